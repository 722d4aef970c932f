package main

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// catcher is a local SMTP server, like a mail catcher a developer runs,
// that requires a login.
type catcher struct {
	mu   sync.Mutex
	msgs [][]byte
}

type catcherSession struct {
	c     *catcher
	authd bool
}

func (s *catcherSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *catcherSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "demo" || pass != "mail-secret" {
			return &smtp.SMTPError{Code: 535, Message: "bad credentials"}
		}
		s.authd = true
		return nil
	}), nil
}
func (s *catcherSession) Mail(string, *smtp.MailOptions) error {
	if !s.authd {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *catcherSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *catcherSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.c.mu.Lock()
	s.c.msgs = append(s.c.msgs, b)
	s.c.mu.Unlock()
	return err
}
func (s *catcherSession) Reset()        {}
func (s *catcherSession) Logout() error { return nil }

func startCatcher(t *testing.T) (*catcher, string) {
	c := &catcher{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &catcherSession{c: c}, nil }))
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c, ln.Addr().String()
}

// textPart returns the decoded text/plain part of a MIME message.
func textPart(t *testing.T, raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err != nil {
			t.Fatalf("no text part: %v", err)
		}
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct == "text/plain" {
			var body io.Reader = p
			if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
				body = quotedprintable.NewReader(p)
			}
			b, _ := io.ReadAll(body)
			return string(b)
		}
	}
}

// With -smtp the demo delivers the enrollment code to a real SMTP server,
// and that code verifies the EMAIL factor (issue #5).
func TestDemoDeliversBySMTP(t *testing.T) {
	c, addr := startCatcher(t)
	t.Setenv("MFAKIT_SMTP_PASSWORD", "mail-secret")
	d := startDemo(t, "-smtp", addr, "-smtp-user", "demo", "-mail-from", "Demo <mfa@demo.example>")
	if d.out.String() != "" {
		t.Fatalf("the demo printed an email although -smtp is set:\n%s", d.out.String())
	}
	alice := d.login("alice@example.com", "alice-password")
	if status, body := d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", alice, ""); status != 200 {
		t.Fatalf("enrollEmail: %d %s", status, body)
	}
	c.mu.Lock()
	if len(c.msgs) != 1 {
		c.mu.Unlock()
		t.Fatalf("the server received %d messages", len(c.msgs))
	}
	raw := c.msgs[0]
	c.mu.Unlock()
	m := regexp.MustCompile(`verification code is:\s+(\d{6})`).FindStringSubmatch(textPart(t, raw))
	if m == nil {
		t.Fatalf("no code in the delivered message:\n%s", raw)
	}
	if status, body := d.call("PUT", "/oauth/users/mfa/verifyEmail", alice, fmt.Sprintf(`{"mfatype":"EMAIL","totp":%q}`, m[1])); status != 200 {
		t.Fatalf("verifyEmail with the delivered code: %d %s", status, body)
	}
}

// A server that refuses the login makes enrollEmail answer 503.
func TestDemoSMTPFailure(t *testing.T) {
	_, addr := startCatcher(t)
	t.Setenv("MFAKIT_SMTP_PASSWORD", "wrong")
	d := startDemo(t, "-smtp", addr, "-smtp-user", "demo")
	alice := d.login("alice@example.com", "alice-password")
	if status, body := d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", alice, ""); status != 503 {
		t.Fatalf("enrollEmail with a failing server: %d %s", status, body)
	}
}

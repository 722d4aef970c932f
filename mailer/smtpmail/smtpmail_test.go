package smtpmail_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mailer/smtpmail"
)

// testCert makes a self-signed certificate for 127.0.0.1 and returns the
// server config and a client config that trusts it.
func testCert(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mfakit test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

type received struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string
}

// server is an in-process SMTP server (github.com/emersion/go-smtp) with
// STARTTLS and AUTH, whose answers a test can script.
type server struct {
	mu    sync.Mutex
	msgs  []received
	conns map[*smtp.Conn]bool // STARTTLS starts a new session on the same connection
	// tempFailures answers this many DATA commands with 451 first.
	tempFailures int
	// rejectRcpt answers RCPT with 550.
	rejectRcpt bool
	addr       string
}

// loginServer is the server side of SASL LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(response) > 0 { // initial response carries the username
			l.user, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(response)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(response))
}

type session struct {
	srv  *server
	conn *smtp.Conn
	cur  received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }
func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != "mfa@example.com" || pass != "s3cret" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.cur.user = user
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
}
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.cur.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.srv.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.tempFailures > 0 {
		s.srv.tempFailures--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.cur.data, s.cur.tls = b, isTLS
	s.srv.msgs = append(s.srv.msgs, s.cur)
	return nil
}
func (s *session) Reset()        { user := s.cur.user; s.cur = received{user: user} }
func (s *session) Logout() error { return nil }

func startServer(t *testing.T, configure func(*server)) (*server, *tls.Config) {
	t.Helper()
	srvTLS, clientTLS := testCert(t)
	s := &server{}
	if configure != nil {
		configure(s)
	}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		if s.conns == nil {
			s.conns = map[*smtp.Conn]bool{}
		}
		s.conns[c] = true
		s.mu.Unlock()
		return &session{srv: s, conn: c}, nil
	})
	gs := smtp.NewServer(be)
	gs.Domain = "localhost"
	gs.TLSConfig = srvTLS
	gs.ReadTimeout, gs.WriteTimeout = 10*time.Second, 10*time.Second
	gs.ErrorLog = nopLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go gs.Serve(ln)
	t.Cleanup(func() { gs.Close() })
	return s, clientTLS
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func (s *server) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func newMailer(t *testing.T, addr string, clientTLS *tls.Config, mod func(*smtpmail.Config)) *smtpmail.Mailer {
	t.Helper()
	cfg := smtpmail.Config{Addr: addr, From: "Acme MFA <mfa@example.com>", Username: "mfa@example.com",
		Password: "s3cret", TLSConfig: clientTLS, Timeout: 2 * time.Second, RetryFor: 5 * time.Second,
		Backoff: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	m, err := smtpmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func codeMessage(t *testing.T) mailer.Message {
	m, err := mailer.DefaultCodeTemplate.Render("alice@example.com", mailer.CodeData{Product: "Acmé ✓", User: "alice",
		Code: "482913", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	m.Text += "\n.\n.leading dot line\n"
	return m
}

// parts parses a received message into its headers and decoded parts.
func parts(t *testing.T, data []byte) (mail.Header, map[string]string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	out := map[string]string{}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body = quotedprintable.NewReader(p)
		}
		b, _ := io.ReadAll(body)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out[ct] = string(b)
	}
	return msg.Header, out
}

func TestDeliveryOverSTARTTLSWithAuth(t *testing.T) {
	for _, auth := range []string{"PLAIN", "LOGIN"} {
		t.Run(auth, func(t *testing.T) {
			srv, clientTLS := startServer(t, nil)
			m := newMailer(t, srv.addr, clientTLS, func(c *smtpmail.Config) { c.Auth = auth })
			if err := m.Send(context.Background(), codeMessage(t)); err != nil {
				t.Fatal(err)
			}
			got := srv.received()
			if len(got) != 1 {
				t.Fatalf("%d messages received", len(got))
			}
			r := got[0]
			if r.from != "mfa@example.com" || len(r.to) != 1 || r.to[0] != "alice@example.com" || !r.tls || r.user != "mfa@example.com" {
				t.Fatalf("envelope %+v", r)
			}
			h, p := parts(t, r.data)
			subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
			if err != nil || subject != "Your Acmé ✓ verification code" {
				t.Fatalf("Subject %q (%q): %v", subject, h.Get("Subject"), err)
			}
			if _, err := h.Date(); err != nil {
				t.Fatalf("Date: %v", err)
			}
			if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.Contains(id, "@") {
				t.Fatalf("Message-ID %q", id)
			}
			if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "mfa@example.com" || from.Name != "Acme MFA" {
				t.Fatalf("From %q: %v", h.Get("From"), err)
			}
			if !strings.Contains(h.Get("To"), "alice@example.com") {
				t.Fatalf("To %q", h.Get("To"))
			}
			text, html := p["text/plain"], p["text/html"]
			if !strings.Contains(text, "482913") || !strings.Contains(html, "482913") {
				t.Fatalf("the code is not in both parts:\n%s\n%s", text, html)
			}
			// Dot-stuffing: lines starting with '.' arrive intact.
			if !strings.Contains(strings.ReplaceAll(text, "\r\n", "\n"), "\n.\n.leading dot line") {
				t.Fatalf("dot lines damaged:\n%q", text)
			}
		})
	}
}

func TestConnectionReuse(t *testing.T) {
	srv, clientTLS := startServer(t, nil)
	m := newMailer(t, srv.addr, clientTLS, nil)
	for range 5 {
		if err := m.Send(context.Background(), codeMessage(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(srv.received()); n != 5 {
		t.Fatalf("%d messages", n)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.conns) != 1 {
		t.Fatalf("a burst of 5 opened %d connections, want 1", len(srv.conns))
	}
}

func TestTemporaryFailureIsRetried(t *testing.T) {
	srv, clientTLS := startServer(t, func(s *server) { s.tempFailures = 2 })
	m := newMailer(t, srv.addr, clientTLS, nil)
	if err := m.Send(context.Background(), codeMessage(t)); err != nil {
		t.Fatalf("after two 451 answers: %v", err)
	}
	if n := len(srv.received()); n != 1 {
		t.Fatalf("%d messages", n)
	}
}

func TestTemporaryFailureGivesUp(t *testing.T) {
	srv, clientTLS := startServer(t, func(s *server) { s.tempFailures = 1000 })
	m := newMailer(t, srv.addr, clientTLS, func(c *smtpmail.Config) { c.RetryFor = 500 * time.Millisecond })
	start := time.Now()
	err := m.Send(context.Background(), codeMessage(t))
	var e *smtpmail.Error
	if !errors.As(err, &e) || !e.Temporary || e.Code != 451 {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("gave up after %v, RetryFor was 500ms", d)
	}
}

func TestPermanentFailureAtOnce(t *testing.T) {
	srv, clientTLS := startServer(t, func(s *server) { s.rejectRcpt = true })
	m := newMailer(t, srv.addr, clientTLS, nil)
	err := m.Send(context.Background(), codeMessage(t))
	var e *smtpmail.Error
	if !errors.As(err, &e) || e.Temporary || e.Code != 550 {
		t.Fatalf("err = %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.conns) != 1 {
		t.Fatalf("a permanent failure was retried (%d connections)", len(srv.conns))
	}
}

func TestWrongPasswordIsPermanent(t *testing.T) {
	srv, clientTLS := startServer(t, nil)
	m := newMailer(t, srv.addr, clientTLS, func(c *smtpmail.Config) { c.Password = "wrong" })
	err := m.Send(context.Background(), codeMessage(t))
	var e *smtpmail.Error
	if !errors.As(err, &e) || e.Temporary {
		t.Fatalf("err = %v", err)
	}
}

func TestTimeoutHonoured(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() { // accepts and never says a word
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	m := newMailer(t, ln.Addr().String(), nil, func(c *smtpmail.Config) {
		c.Timeout = 300 * time.Millisecond
		c.RetryFor = time.Second
	})
	start := time.Now()
	err = m.Send(context.Background(), codeMessage(t))
	var e *smtpmail.Error
	if !errors.As(err, &e) || !e.Temporary {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a silent server held Send for %v", d)
	}
}

func TestConnectionRefusedIsTemporary(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	m := newMailer(t, addr, nil, func(c *smtpmail.Config) { c.RetryFor = 300 * time.Millisecond })
	var e *smtpmail.Error
	if err := m.Send(context.Background(), codeMessage(t)); !errors.As(err, &e) || !e.Temporary {
		t.Fatalf("err = %v", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	srvTLS, clientTLS := testCert(t)
	s := &server{}
	gs := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{srv: s, conn: c}, nil }))
	gs.Domain, gs.TLSConfig, gs.ErrorLog = "localhost", srvTLS, nopLogger{}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	defer gs.Close()
	m := newMailer(t, ln.Addr().String(), clientTLS, func(c *smtpmail.Config) { c.Security = smtpmail.ImplicitTLS })
	if err := m.Send(context.Background(), codeMessage(t)); err != nil {
		t.Fatal(err)
	}
	if got := s.received(); len(got) != 1 || !got[0].tls {
		t.Fatalf("received %+v", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []smtpmail.Config{
		{Addr: "nohost", From: "a@example.com"},
		{Addr: "smtp.example.com:99999", From: "a@example.com"},
		{Addr: "smtp.example.com:587"},
		{Addr: "smtp.example.com:587", From: "not an address"},
		{Addr: "smtp.example.com:587", From: "a@example.com", Username: "u", Auth: "CRAM-MD5"},
	} {
		if _, err := smtpmail.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

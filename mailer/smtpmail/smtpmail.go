// Package smtpmail delivers mfakit's email over SMTP with
// github.com/wneessen/go-mail: implicit TLS or STARTTLS (required by
// default), PLAIN or LOGIN authentication, timeouts, retries of temporary
// failures with back-off, one reused connection for bursts, and
// multipart/alternative messages (text and HTML) with proper headers.
//
//	m, err := smtpmail.New(smtpmail.Config{Addr: "smtp.example.com:587", From: "Acme <mfa@acme.example>",
//		Username: "mfa@acme.example", Password: os.Getenv("SMTP_PASSWORD")})
//	svc, err := mfa.New(store, m, keys, mfa.Config{})
//	defer m.Close()
package smtpmail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/mfakit/mfakit/mailer"
)

// Security is how the connection to the server is protected.
type Security int

const (
	// StartTLS (the default) upgrades the connection with STARTTLS and
	// refuses to send if the server does not offer it. Only to a loopback
	// address (a local mail catcher) is STARTTLS used when offered and
	// skipped when not.
	StartTLS Security = iota
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465).
	ImplicitTLS
	// Plaintext sends without TLS. It is the explicit opt-in for a server
	// that is not on a loopback address; credentials and codes travel in
	// clear, so use it only on a network you trust.
	Plaintext
)

// Config configures a Mailer. Addr and From are required; every other
// field's zero value is a safe default.
type Config struct {
	// Addr is the server's host:port, e.g. "smtp.example.com:587".
	Addr string
	// From is the sender, an address or "Name <address>".
	From string
	// Username and Password authenticate when Username is set.
	Username, Password string
	// Auth is the SASL mechanism: "PLAIN" (default) or "LOGIN".
	Auth string
	// Security protects the connection. Default StartTLS (required).
	Security Security
	// TLSConfig verifies the server. Default: the system roots and the
	// host name of Addr.
	TLSConfig *tls.Config
	// HELO is the name given in EHLO. Default: go-mail's (the host name).
	HELO string
	// Timeout bounds one connection attempt and one send. Default 10s.
	Timeout time.Duration
	// RetryFor bounds the total time spent retrying temporary failures
	// (4xx answers, refused or timed-out connections). Default 30s.
	RetryFor time.Duration
	// Backoff is the first wait between attempts; it doubles each time.
	// Default 500ms.
	Backoff time.Duration
	// IdleTimeout is how long an idle connection is kept for the next
	// message. Default 30s.
	IdleTimeout time.Duration
	// Logger receives delivery failures (never message bodies). Default
	// slog.Default().
	Logger *slog.Logger
}

// Error is a delivery failure. Temporary failures were retried until
// Config.RetryFor ran out; permanent ones (5xx, a refused recipient, a
// failed login) are returned at once.
type Error struct {
	// Temporary reports a 4xx answer or a network failure.
	Temporary bool
	// Code is the SMTP reply code, when the server gave one.
	Code int
	// Err is the underlying error.
	Err error
}

// Error says whether the failure was temporary, with the reply code.
func (e *Error) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	if e.Code != 0 {
		return fmt.Sprintf("smtpmail: %s failure (%d): %v", kind, e.Code, e.Err)
	}
	return fmt.Sprintf("smtpmail: %s failure: %v", kind, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Mailer is a mailer.Mailer that sends over SMTP. It is safe for
// concurrent use; messages share one connection, one at a time.
type Mailer struct {
	cfg  Config
	from string

	mu     sync.Mutex
	client *mail.Client
	open   bool
	idle   *time.Timer
}

var _ mailer.Mailer = (*Mailer)(nil)

// New checks cfg and returns a Mailer. It does not connect yet.
func New(cfg Config) (*Mailer, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtpmail: Addr %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("smtpmail: Addr %q: bad port", cfg.Addr)
	}
	if cfg.From == "" {
		return nil, errors.New("smtpmail: From is required")
	}
	if err := mail.NewMsg().From(cfg.From); err != nil {
		return nil, fmt.Errorf("smtpmail: From %q: %w", cfg.From, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 30 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	loopback := isLoopback(host)
	opts := []mail.Option{mail.WithPort(port), mail.WithTimeout(cfg.Timeout)}
	switch cfg.Security {
	case StartTLS, Plaintext:
		opts = append(opts, mail.WithTLSPolicy(tlsPolicy(cfg.Security, loopback)))
	case ImplicitTLS:
		opts = append(opts, mail.WithSSL())
	default:
		return nil, fmt.Errorf("smtpmail: unknown Security %d", cfg.Security)
	}
	if cfg.TLSConfig != nil {
		opts = append(opts, mail.WithTLSConfig(cfg.TLSConfig))
	} else {
		opts = append(opts, mail.WithTLSConfig(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}))
	}
	if cfg.HELO != "" {
		opts = append(opts, mail.WithHELO(cfg.HELO))
	}
	if cfg.Username != "" {
		auth, err := authType(cfg.Auth, cfg.Security == Plaintext || loopback)
		if err != nil {
			return nil, err
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	client, err := mail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtpmail: %w", err)
	}
	return &Mailer{cfg: cfg, from: cfg.From, client: client}, nil
}

// authType picks go-mail's mechanism. The "NoEnc" variants may run
// without TLS; they are used only where plaintext is allowed at all.
func authType(name string, plainAllowed bool) (mail.SMTPAuthType, error) {
	switch strings.ToUpper(name) {
	case "", "PLAIN":
		if plainAllowed {
			return mail.SMTPAuthPlainNoEnc, nil
		}
		return mail.SMTPAuthPlain, nil
	case "LOGIN":
		if plainAllowed {
			return mail.SMTPAuthLoginNoEnc, nil
		}
		return mail.SMTPAuthLogin, nil
	}
	return "", fmt.Errorf("smtpmail: Auth %q: want PLAIN or LOGIN", name)
}

// tlsPolicy is the STARTTLS rule: required, except to a loopback address
// (a local mail catcher may not offer it) or with the Plaintext opt-in.
func tlsPolicy(sec Security, loopback bool) mail.TLSPolicy {
	switch {
	case sec == Plaintext:
		return mail.NoTLS
	case loopback:
		return mail.TLSOpportunistic
	}
	return mail.TLSMandatory
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// message builds the MIME message: multipart/alternative with the text
// part first, Date and Message-ID set, the subject encoded as UTF-8.
func (m *Mailer) message(msg mailer.Message) (*mail.Msg, error) {
	out := mail.NewMsg()
	if err := out.From(m.from); err != nil {
		return nil, &Error{Err: err}
	}
	if err := out.To(msg.To); err != nil {
		return nil, &Error{Err: fmt.Errorf("recipient %q: %w", msg.To, err)}
	}
	out.Subject(msg.Subject)
	out.SetDate()
	out.SetMessageID()
	out.SetBodyString(mail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		out.AddAlternativeString(mail.TypeTextHTML, msg.HTML)
	}
	return out, nil
}

// Send delivers msg, retrying temporary failures with back-off for up to
// Config.RetryFor (or until ctx is done). It returns nil or an *Error.
func (m *Mailer) Send(ctx context.Context, msg mailer.Message) error {
	out, err := m.message(msg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(m.cfg.RetryFor)
	wait := m.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := m.sendOnce(ctx, out)
		if err == nil {
			return nil
		}
		if !err.Temporary || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			m.cfg.Logger.WarnContext(ctx, "smtpmail: delivery failed", "attempts", attempt, "err", err)
			return err
		}
		select {
		case <-ctx.Done():
			return &Error{Temporary: true, Err: ctx.Err()}
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// sendOnce sends on the kept connection, dialling when there is none. A
// failure closes the connection so the next attempt starts clean.
func (m *Mailer) sendOnce(ctx context.Context, out *mail.Msg) *Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idle != nil {
		m.idle.Stop()
	}
	if !m.open {
		if err := m.client.DialWithContext(ctx); err != nil {
			return classify(err)
		}
		m.open = true
	}
	if err := m.client.Send(out); err != nil {
		m.client.Close()
		m.open = false
		return classify(err)
	}
	m.idle = time.AfterFunc(m.cfg.IdleTimeout, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.open {
			m.client.Close()
			m.open = false
		}
	})
	return nil
}

// classify sorts a go-mail or network error into temporary or permanent.
func classify(err error) *Error {
	var sendErr *mail.SendError
	if errors.As(err, &sendErr) {
		code := sendErr.ErrorCode()
		temp := sendErr.IsTemp() || (code == 0 && sendErr.Reason == mail.ErrConnCheck)
		return &Error{Temporary: temp, Code: code, Err: err}
	}
	var netErr net.Error
	var opErr *net.OpError
	if errors.As(err, &netErr) || errors.As(err, &opErr) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Temporary: true, Err: err}
	}
	msg := err.Error()
	if len(msg) >= 3 {
		if code, convErr := strconv.Atoi(msg[:3]); convErr == nil {
			return &Error{Temporary: code/100 == 4, Code: code, Err: err}
		}
	}
	// Unknown: a TLS handshake or protocol error. Retrying will not help.
	return &Error{Err: err}
}

// Close closes the kept connection, if any.
func (m *Mailer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idle != nil {
		m.idle.Stop()
	}
	if !m.open {
		return nil
	}
	m.open = false
	return m.client.Close()
}

package smtpmail

import (
	"testing"

	mail "github.com/wneessen/go-mail"
)

// STARTTLS is required everywhere but on loopback, unless Plaintext is
// chosen explicitly.
func TestTLSPolicy(t *testing.T) {
	for _, c := range []struct {
		host string
		sec  Security
		want mail.TLSPolicy
	}{
		{"smtp.example.com", StartTLS, mail.TLSMandatory},
		{"192.0.2.10", StartTLS, mail.TLSMandatory},
		{"127.0.0.1", StartTLS, mail.TLSOpportunistic},
		{"::1", StartTLS, mail.TLSOpportunistic},
		{"localhost", StartTLS, mail.TLSOpportunistic},
		{"smtp.example.com", Plaintext, mail.NoTLS},
	} {
		if got := tlsPolicy(c.sec, isLoopback(c.host)); got != c.want {
			t.Errorf("%s %v: %v, want %v", c.host, c.sec, got, c.want)
		}
	}
	if _, err := authType("PLAIN", false); err != nil {
		t.Fatal(err)
	}
	if a, _ := authType("", false); a != mail.SMTPAuthPlain {
		t.Errorf("auth over TLS = %v, want PLAIN that refuses plaintext", a)
	}
}

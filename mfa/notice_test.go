package mfa_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
)

type directory map[string]string

func (d directory) EmailOf(_ context.Context, user string) (string, error) { return d[user], nil }

// S17: adding or removing a factor emails the user a notice that says what
// changed, when, and how to report a change they did not make.
func TestChangeNotices(t *testing.T) {
	f := newFixture(t, mfa.Config{Issuer: "Acme", Directory: directory{"hal": "hal@corp.example"}, ReportTo: "security@acme.example"})
	ctx := mfa.WithRequestInfo(context.Background(), mfa.RequestInfo{Email: "hal@example.com"})
	key, _ := f.svc.BeginAuthenticator(ctx, "hal")
	secret, _, _ := mfa.ParseKeyURI(key.URI)
	if err := f.svc.VerifyAuthenticator(ctx, "hal", f.code(secret, 0)); err != nil {
		t.Fatal(err)
	}
	m, ok := f.mail.Last("hal@example.com")
	if !ok || !strings.Contains(m.Subject, "an authenticator app added") ||
		!strings.Contains(m.Text, "You added an authenticator app to your Acme account on") ||
		!strings.Contains(m.Text, "security@acme.example") || !strings.Contains(m.HTML, "did not make this change") {
		t.Fatalf("added notice: %+v", m)
	}
	f.clock.Add(30 * time.Second)
	if err := f.svc.ResetAuthenticator(ctx, "hal", mfa.Proof{Factor: mfa.Authenticator, Code: f.code(secret, 0)}); err != nil {
		t.Fatal(err)
	}
	if m, _ = f.mail.Last("hal@example.com"); !strings.Contains(m.Text, "You removed an authenticator app from your Acme account") {
		t.Fatalf("removed notice: %s", m.Text)
	}
	// An admin reset goes to the address the Directory knows, naming the admin.
	f.enroll(t, "hal")
	admin := mfa.Principal{Username: "root@acme.example", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	adminCtx := mfa.WithRequestInfo(context.Background(), mfa.RequestInfo{Email: "root@acme.example"})
	if err := f.svc.AdminResetAuthenticator(adminCtx, admin, "hal"); err != nil {
		t.Fatal(err)
	}
	m, ok = f.mail.Last("hal@corp.example")
	if !ok || !strings.Contains(m.Text, "An administrator (root@acme.example) removed an authenticator app") {
		t.Fatalf("admin notice: %+v", m)
	}
	if _, ok := f.mail.Last("root@acme.example"); ok {
		t.Fatal("the notice of an admin reset went to the admin")
	}
}

// Email templates follow the caller's locale, then its language.
func TestLocalizedCodeEmail(t *testing.T) {
	de, err := mailer.ParseTemplate("Ihr Code", "Ihr Code lautet {{.Code}}.", "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, mfa.Config{CodeTemplates: map[string]*mailer.Template{"de": de}})
	ctx := mfa.WithRequestInfo(context.Background(), mfa.RequestInfo{Locale: "de-AT"})
	if err := f.svc.BeginEmail(ctx, "ida", "ida@example.com"); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.mail.Last("ida@example.com"); !strings.HasPrefix(m.Text, "Ihr Code lautet ") {
		t.Fatalf("de-AT got %q", m.Text)
	}
	if err := f.svc.BeginEmail(context.Background(), "jan", "jan@example.com"); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.mail.Last("jan@example.com"); !strings.HasPrefix(m.Text, "Hello jan") {
		t.Fatalf("default locale got %q", m.Text)
	}
}

package mailer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer"
)

func TestDefaultCodeTemplate(t *testing.T) {
	m, err := mailer.DefaultCodeTemplate.Render("a@example.com", mailer.CodeData{
		Product: "Acme <Corp>", User: "alice", Code: "123456", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "a@example.com" || m.Subject != "Acme <Corp> verification code: 123456" {
		t.Fatalf("header: %+v", m)
	}
	for _, part := range []string{m.Text, m.HTML} {
		if !strings.Contains(part, "123456") || !strings.Contains(part, "10 minutes") || !strings.Contains(part, "did not ask") {
			t.Fatalf("part lacks code, lifetime or advice:\n%s", part)
		}
	}
	if strings.Contains(m.HTML, "<Corp>") || !strings.Contains(m.HTML, "Acme &lt;Corp&gt;") {
		t.Fatal("HTML part does not escape values")
	}
}

func TestParseTemplate(t *testing.T) {
	if _, err := mailer.ParseTemplate("{{.Code", "x", ""); err == nil {
		t.Fatal("bad subject template accepted")
	}
	tpl, err := mailer.ParseTemplate("Code {{.Code}}", "Your code: {{.Code}}", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := tpl.Render("b@example.com", mailer.CodeData{Code: "42"})
	if err != nil || m.HTML != "" || m.Text != "Your code: 42" {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := tpl.Render("b@example.com", map[string]string{}); err == nil {
		t.Fatal("missing key rendered")
	}
}

func TestWriterPrintsWholeMessage(t *testing.T) {
	var b strings.Builder
	w := &mailer.Writer{W: &b, Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
	err := w.Send(context.Background(), mailer.Message{To: "c@example.com", Subject: "Code 654321", Text: "code 654321\n", HTML: "<p>654321</p>"})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"To:      c@example.com", "Subject: Code 654321", "code 654321", "<p>654321</p>", "Fri, 02 Jan 2026 03:04:05 +0000"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Send(ctx, mailer.Message{}); err == nil {
		t.Fatal("Send ignored a cancelled context")
	}
}

package mailer_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mfakit/mfakit/mailer"
)

func TestDefaultCodeTemplate(t *testing.T) {
	m, err := mailer.DefaultCodeTemplate.Render("a@example.com", mailer.CodeData{
		Product: "Acme <Corp>", User: "alice", Code: "123456", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if m.To != "a@example.com" || m.Subject != "Your Acme <Corp> verification code" {
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

// S29: the built-in code email, and every code template embedded beside
// it (translations such as code.de.subject.txt, if any are added), keeps
// the code out of the subject and puts it in both bodies.
func TestCodeNotInSubject(t *testing.T) {
	const code = "482913"
	subjects, err := fs.Glob(os.DirFS("templates"), "code*.subject.txt")
	if err != nil || len(subjects) == 0 {
		t.Fatalf("no code templates in templates/: %v", err)
	}
	tpls := map[string]*mailer.Template{"DefaultCodeTemplate": mailer.DefaultCodeTemplate}
	for _, s := range subjects {
		name := strings.TrimSuffix(s, ".subject.txt")
		tpl, err := mailer.ParseTemplateFS(os.DirFS("templates"), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tpls[name] = tpl
	}
	for name, tpl := range tpls {
		m, err := tpl.Render("a@example.com", mailer.CodeData{Product: "Acme", User: "alice", Code: code, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(m.Subject, code) || strings.Contains(m.Subject, code[:3]) || m.Subject == "" {
			t.Errorf("%s: the subject %q shows the code", name, m.Subject)
		}
		if !strings.Contains(m.Text, code) || !strings.Contains(m.HTML, code) {
			t.Errorf("%s: a body lacks the code:\n%s\n%s", name, m.Text, m.HTML)
		}
	}
}

// S29: a host's subject that would show the code, or part of it, is
// refused when it is parsed, with an error naming the file for
// ParseTemplateFS; subjects without the code, and notice templates, pass.
func TestParseTemplateRefusesCodeInSubject(t *testing.T) {
	for _, subject := range []string{
		"Code {{.Code}}",
		"{{.Product}}: {{.Code}} is your code",
		"Code {{slice .Code 0 3}}…",
		"{{printf \"%s-%s\" .Product .Code}}",
		"{{with .Code}}{{.}}{{end}}",
		"{{if eq .Code \"428613\"}}x{{end}}",
	} {
		if _, err := mailer.ParseTemplate(subject, "Your code: {{.Code}}", ""); !errors.Is(err, mailer.ErrCodeInSubject) {
			t.Errorf("ParseTemplate(%q) = %v, want ErrCodeInSubject", subject, err)
		}
	}
	fsys := fstest.MapFS{
		"code.subject.txt": {Data: []byte("Ihr Code: {{.Code}}")},
		"code.txt":         {Data: []byte("Ihr Code ist {{.Code}}.")},
	}
	_, err := mailer.ParseTemplateFS(fsys, "code")
	if !errors.Is(err, mailer.ErrCodeInSubject) || !strings.Contains(err.Error(), "code.subject.txt") {
		t.Fatalf("ParseTemplateFS: %v", err)
	}
	for _, subject := range []string{
		"Your {{.Product}} verification code",
		"{{.Product}}: code for {{.User}}, valid {{.Minutes}} minutes",
		"{{if .Code}}A new code{{end}} ({{len .Code}} digits)",
		"{{.Product}}: {{.FactorName}} {{.Change}} on your account", // a notice subject
	} {
		if _, err := mailer.ParseTemplate(subject, "Your code: {{.Code}}", ""); err != nil {
			t.Errorf("ParseTemplate(%q): %v", subject, err)
		}
	}
}

func TestParseTemplate(t *testing.T) {
	if _, err := mailer.ParseTemplate("{{.Code", "x", ""); err == nil {
		t.Fatal("bad subject template accepted")
	}
	tpl, err := mailer.ParseTemplate("Your code", "Your code: {{.Code}}", "")
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

package mailer_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mailer/mailertest"
)

// slowMailer delivers after a pause, to fill a queue.
type slowMailer struct {
	rec   *mailertest.Recorder
	pause time.Duration
}

func (s *slowMailer) Send(ctx context.Context, m mailer.Message) error {
	time.Sleep(s.pause)
	return s.rec.Send(ctx, m)
}

func TestQueueDeliversAndDrains(t *testing.T) {
	rec := &mailertest.Recorder{}
	q := mailer.NewQueue(&slowMailer{rec: rec, pause: 5 * time.Millisecond}, mailer.QueueConfig{Workers: 2, Size: 100, Logger: slog.New(slog.DiscardHandler)})
	for i := range 20 {
		if err := q.Send(context.Background(), mailer.Message{To: "a@example.com", Text: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Messages()); n != 20 {
		t.Fatalf("Close drained %d of 20 messages", n)
	}
	if err := q.Send(context.Background(), mailer.Message{}); !errors.Is(err, mailer.ErrQueueClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestQueueFull(t *testing.T) {
	block := make(chan struct{})
	q := mailer.NewQueue(mailer.SendFunc(func(context.Context, mailer.Message) error { <-block; return nil }),
		mailer.QueueConfig{Workers: 1, Size: 2})
	var full error
	for range 5 {
		if err := q.Send(context.Background(), mailer.Message{}); err != nil {
			full = err
		}
	}
	if !errors.Is(full, mailer.ErrQueueFull) {
		t.Fatalf("a bounded queue took everything: %v", full)
	}
	close(block)
	q.Close(context.Background())
}

func TestTemplatesFromFilesAndLocales(t *testing.T) {
	fsys := fstest.MapFS{
		"code.subject.txt": {Data: []byte("Ihr {{.Product}}-Bestätigungscode")},
		"code.txt":         {Data: []byte("Ihr {{.Product}}-Code ist {{.Code}}, gültig {{.Minutes}} Minuten.")},
	}
	de, err := mailer.ParseTemplateFS(fsys, "code")
	if err != nil {
		t.Fatal(err)
	}
	loc := mailer.Localized{Default: mailer.DefaultCodeTemplate, ByLocale: map[string]*mailer.Template{"de": de}}
	for locale, want := range map[string]*mailer.Template{"de": de, "de-CH": de, "fr": mailer.DefaultCodeTemplate, "": mailer.DefaultCodeTemplate} {
		if loc.For(locale) != want {
			t.Errorf("For(%q) picked the wrong template", locale)
		}
	}
	m, err := de.Render("b@example.com", mailer.CodeData{Product: "Acme", Code: "123456", TTL: 5 * time.Minute})
	if err != nil || m.Subject != "Ihr Acme-Bestätigungscode" || m.Text != "Ihr Acme-Code ist 123456, gültig 5 Minuten." || m.HTML != "" {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := mailer.ParseTemplateFS(fsys, "missing"); err == nil {
		t.Fatal("missing template accepted")
	}
}

// Package mailer defines how mfakit sends email: the Mailer interface a host
// implements (or picks from the kit), the Message it receives, and the
// templates that turn a code or a notice into a message.
package mailer

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Message is one email, ready to deliver.
type Message struct {
	// To is the recipient's address.
	To string
	// Subject is the subject line, plain UTF-8 (the Mailer encodes it).
	Subject string
	// Text is the text/plain part.
	Text string
	// HTML is the text/html part; may be empty.
	HTML string
}

// Mailer delivers messages.
type Mailer interface {
	// Send delivers m or returns an error. It must honour ctx (return when
	// ctx is done) and must not log the message body, which holds codes.
	// Send may be called concurrently.
	Send(ctx context.Context, m Message) error
}

// SendFunc adapts a function to Mailer.
type SendFunc func(ctx context.Context, m Message) error

// Send calls f(ctx, m).
func (f SendFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// Writer is a Mailer that prints every message in full to W, for demos and
// development: a person reads the code in the terminal. Never use it in
// production, where it would write codes to a log.
type Writer struct {
	// W receives the messages.
	W io.Writer
	// Now stamps the Date line; default time.Now.
	Now func() time.Time

	mu sync.Mutex
}

// Send writes m to w.W as a readable message with both parts.
func (w *Writer) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	var b strings.Builder
	rule := strings.Repeat("=", 72)
	fmt.Fprintf(&b, "%s\nDate:    %s\nTo:      %s\nSubject: %s\n", rule, now().Format(time.RFC1123Z), m.To, m.Subject)
	fmt.Fprintf(&b, "--- text/plain ---\n%s\n", strings.TrimRight(m.Text, "\n"))
	if m.HTML != "" {
		fmt.Fprintf(&b, "--- text/html ---\n%s\n", strings.TrimRight(m.HTML, "\n"))
	}
	b.WriteString(rule + "\n")
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := io.WriteString(w.W, b.String())
	return err
}

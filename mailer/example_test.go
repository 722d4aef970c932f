package mailer_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mfakit/mfakit/mailer"
)

// Send mail: any function can be a Mailer; here one that prints the
// subject of the code email the kit would send.
func ExampleSendFunc() {
	var m mailer.Mailer = mailer.SendFunc(func(_ context.Context, msg mailer.Message) error {
		fmt.Println(msg.To, "|", msg.Subject)
		return nil
	})
	msg, _ := mailer.DefaultCodeTemplate.Render("alice@example.com", mailer.CodeData{Product: "Acme", User: "alice",
		Code: "123456", TTL: 10 * time.Minute})
	m.Send(context.Background(), msg)
	// Output: alice@example.com | Your Acme verification code
}

// The Writer mailer prints whole messages, for demos and development.
func ExampleWriter() {
	w := &mailer.Writer{W: os.Stdout, Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
	w.Send(context.Background(), mailer.Message{To: "bob@example.com", Subject: "Hello", Text: "Your code is 654321."})
	// Output:
	// ========================================================================
	// Date:    Fri, 02 Jan 2026 03:04:05 +0000
	// To:      bob@example.com
	// Subject: Hello
	// --- text/plain ---
	// Your code is 654321.
	// ========================================================================
}

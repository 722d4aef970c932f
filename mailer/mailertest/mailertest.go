// Package mailertest provides a Mailer that records messages, for tests.
package mailertest

import (
	"context"
	"regexp"
	"sync"

	"github.com/mfakit/mfakit/mailer"
)

// Recorder is a mailer.Mailer that keeps every message it is given. After
// SetErr(err), Send records nothing and returns err. Safe for concurrent
// use.
type Recorder struct {
	mu   sync.Mutex
	msgs []mailer.Message
	err  error
}

// SetErr makes Send fail with err (nil: succeed again).
func (r *Recorder) SetErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Send records m, or returns the error given to SetErr.
func (r *Recorder) Send(ctx context.Context, m mailer.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, m)
	return nil
}

// Messages returns a copy of what was sent, oldest first.
func (r *Recorder) Messages() []mailer.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mailer.Message(nil), r.msgs...)
}

// Last returns the newest message sent to to, and whether there is one.
func (r *Recorder) Last(to string) (mailer.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.msgs) - 1; i >= 0; i-- {
		if r.msgs[i].To == to {
			return r.msgs[i], true
		}
	}
	return mailer.Message{}, false
}

var codePattern = regexp.MustCompile(`\b\d{6,8}\b`)

// Code returns the first run of 6 to 8 digits in the text part of m:
// the one-time code of a code email, or "" if it has none.
func Code(m mailer.Message) string { return codePattern.FindString(m.Text) }

// LastCode returns the first run of 6 to 8 digits in the text part of the
// newest message to to, or "" when there is none.
func (r *Recorder) LastCode(to string) string {
	m, ok := r.Last(to)
	if !ok {
		return ""
	}
	return Code(m)
}

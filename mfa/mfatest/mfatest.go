// Package mfatest helps test code that uses mfa: Recorder keeps the audit
// events a Service emits, for assertions.
package mfatest

import (
	"context"
	"slices"
	"sync"

	"github.com/mfakit/mfakit/mfa"
)

// Recorder is an mfa.EventHook that keeps every event. The zero value is
// ready to use; it is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []mfa.Event
}

// HandleEvent records e.
func (r *Recorder) HandleEvent(_ context.Context, e mfa.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of the events recorded so far, oldest first.
func (r *Recorder) Events() []mfa.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Take returns the events recorded since the last Take and forgets them.
func (r *Recorder) Take() []mfa.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// Types returns the type of each recorded event, oldest first.
func (r *Recorder) Types() []mfa.EventType {
	var out []mfa.EventType
	for _, e := range r.Events() {
		out = append(out, e.Type)
	}
	return out
}

// Has reports whether an event of type t was recorded.
func (r *Recorder) Has(t mfa.EventType) bool { return slices.Contains(r.Types(), t) }

// Count returns how many events of type t were recorded for user and
// factor f.
func (r *Recorder) Count(user string, f mfa.Factor, t mfa.EventType) int {
	n := 0
	for _, e := range r.Events() {
		if e.User == user && e.Factor == f && e.Type == t {
			n++
		}
	}
	return n
}

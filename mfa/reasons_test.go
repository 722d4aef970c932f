package mfa_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// TestFailureReasonsAreProblemCodes: every Event.Reason of a failure is a
// problem code of httpx's table, the very code httpx answers the same
// cause with, so audit logs and HTTP answers speak one vocabulary. (The
// test imports httpx; mfa itself cannot.)
func TestFailureReasonsAreProblemCodes(t *testing.T) {
	t.Parallel()
	codes := map[string]bool{}
	for _, c := range httpx.ProblemCodes() {
		codes[c.Code] = true
	}
	for _, cause := range mfa.FailureCauses() {
		wrapped := fmt.Errorf("context: %w", cause)
		if got, want := mfa.CodeOf(wrapped), httpx.ProblemFor(wrapped).Code; got != want {
			t.Errorf("%v: reason %q, but httpx answers it with %q", cause, got, want)
		}
	}
	if other := mfa.CodeOf(errors.New("any other cause")); !codes[other] {
		t.Errorf("the default reason %q is not an httpx problem code", other)
	}
}

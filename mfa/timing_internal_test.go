package mfa

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/storage/memstore"
)

// S21: a wrong code and a user without an enrollment cost the same work —
// both open a secret's worth of TOTP checks — so timing does not tell an
// attacker which users are enrolled.
func TestNoEnrollmentDoesTheSameWork(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	svc, err := New(memstore.New(), &mailertest.Recorder{}, NewRandomKeyring(), Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	inner := svc.match
	svc.match = func(secret []byte, code string, at time.Time) (int64, bool) {
		calls++
		return inner(secret, code, at)
	}
	key, _ := svc.BeginAuthenticator(ctx, "enrolled")
	secret, p, _ := ParseKeyURI(key.URI)
	if err := svc.VerifyAuthenticator(ctx, "enrolled", p.Code(secret, p.Step(now))); err != nil {
		t.Fatal(err)
	}
	// A code that surely is wrong: none of the window's steps gives it.
	wrong := "000001"
	for _, ok := svc.totp.Match(secret, wrong, now); ok; _, ok = svc.totp.Match(secret, wrong, now) {
		wrong = p.Code(secret, p.Step(now)+7)
	}
	calls = 0
	wrongErr := svc.CheckAuthenticator(ctx, "enrolled", wrong)
	wrongCalls := calls
	calls = 0
	noneErr := svc.CheckAuthenticator(ctx, "stranger", wrong)
	if wrongCalls != 1 || calls != 1 {
		t.Fatalf("TOTP checks: wrong code %d, no enrollment %d; want 1 each", wrongCalls, calls)
	}
	if !errors.Is(wrongErr, ErrInvalidCode) || !errors.Is(noneErr, ErrNotEnrolled) {
		t.Fatalf("errors: %v, %v", wrongErr, noneErr)
	}
}

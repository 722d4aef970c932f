package mfa_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// plainStore offers only what storage.Store requires: none of the
// optional capabilities (ReservingReader, Resealer, SendReleaser, Cleaner).
type plainStore struct{ storage.Store }

// The kit works on a Store without the optional capabilities, through its
// fallbacks: checks are still reserved first and bounded under concurrency
// (S22), a missing enrollment is still a counted failure, secrets sealed
// under an old key still open, and an undelivered email still drops its code.
func TestStoreWithoutOptionalCapabilities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := plainStore{memstore.New()}
	rec := &mailertest.Recorder{}
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	k1, k2 := key32(), key32()
	ring1, _ := mfa.NewKeyring("k1", map[string][]byte{"k1": k1})
	svc, err := mfa.New(store, rec, ring1, mfa.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := svc.BeginAuthenticator(ctx, "pia")
	secret, p, _ := mfa.ParseKeyURI(key.URI)
	if err := svc.VerifyAuthenticator(ctx, "pia", p.Code(secret, p.Step(clk.Now()))); err != nil {
		t.Fatal(err)
	}

	// Rotated without Resealer: the old key still opens the secret.
	ring2, _ := mfa.NewKeyring("k2", map[string][]byte{"k1": k1, "k2": k2})
	svc, _ = mfa.New(store, rec, ring2, mfa.Config{Now: clk.Now})
	clk.Add(30 * time.Second)
	if err := svc.CheckAuthenticator(ctx, "pia", p.Code(secret, p.Step(clk.Now()))); err != nil {
		t.Fatalf("check after rotation without Resealer: %v", err)
	}

	// Without ReservingReader: still at most MaxFailures compared.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); svc.CheckAuthenticator(ctx, "pia", "000000") }()
	}
	wg.Wait()
	if a, _ := store.Attempts(ctx, "pia", mfa.Authenticator); a.Failures != 5 {
		t.Fatalf("%d checks reserved, want 5", a.Failures)
	}
	// A user without an enrollment: a counted failure, not an error.
	if err := svc.CheckAuthenticator(ctx, "nobody", "123456"); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("no enrollment: %v", err)
	}
	if a, _ := store.Attempts(ctx, "nobody", mfa.Authenticator); a.Failures != 1 {
		t.Fatalf("no enrollment counted %d times", a.Failures)
	}

	// Without SendReleaser: an undelivered email drops its code; the next
	// send waits for the resend interval.
	rec.SetErr(errors.New("smtp down"))
	if err := svc.BeginEmail(ctx, "pia", "pia@example.com"); !errors.Is(err, mfa.ErrMailUnavailable) {
		t.Fatalf("undelivered: %v", err)
	}
	rec.SetErr(nil)
	if err := svc.BeginEmail(ctx, "pia", "pia@example.com"); !errors.Is(err, mfa.ErrRateLimited) {
		t.Fatalf("resend at once without SendReleaser: %v", err)
	}
	clk.Add(time.Minute)
	if err := svc.BeginEmail(ctx, "pia", "pia@example.com"); err != nil {
		t.Fatalf("resend after the interval: %v", err)
	}
}

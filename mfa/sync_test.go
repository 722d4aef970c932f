package mfa_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// syncingStore is a memstore that claims storage.Syncer, counting Sync
// calls and failing them on demand.
type syncingStore struct {
	*memstore.Store
	syncs atomic.Int64
	fail  atomic.Bool
}

func (s *syncingStore) Sync(ctx context.Context) error {
	s.syncs.Add(1)
	if s.fail.Load() {
		return errors.New("the log could not be flushed")
	}
	return ctx.Err()
}

// A Store whose reservations become durable only at Sync (storage.Syncer)
// is synced before any failed check is answered, and a failed Sync is an
// internal error, never the failure's answer; a right code needs no Sync
// (its own write makes the reservation durable).
func TestFailureWaitsForSync(t *testing.T) {
	ctx := context.Background()
	store := &syncingStore{Store: memstore.New()}
	now := time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)
	svc, err := mfa.New(store, &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	key, err := svc.BeginAuthenticator(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	secret, p, err := mfa.ParseKeyURI(key.URI)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.VerifyAuthenticator(ctx, "alice", p.Code(secret, p.Step(now))); err != nil {
		t.Fatal(err)
	}
	if n := store.syncs.Load(); n != 0 {
		t.Fatalf("a right code synced %d times, want 0", n)
	}
	wrong := p.Code(secret, p.Step(now)+5)
	if err := svc.CheckAuthenticator(ctx, "alice", wrong); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("wrong code: %v, want ErrInvalidCode", err)
	}
	if n := store.syncs.Load(); n != 1 {
		t.Fatalf("a wrong code synced %d times, want 1", n)
	}
	if err := svc.CheckAuthenticator(ctx, "bob", wrong); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("unknown user: %v, want ErrNotEnrolled", err)
	}
	if n := store.syncs.Load(); n != 2 {
		t.Fatalf("a check of an unknown factor synced %d times in all, want 2", n)
	}
	store.fail.Store(true)
	err = svc.CheckAuthenticator(ctx, "alice", wrong)
	if err == nil || errors.Is(err, mfa.ErrInvalidCode) || !errors.Is(err, mfa.ErrInternal) {
		t.Fatalf("wrong code with a failing Sync: %v, want an internal error", err)
	}
	a, err := store.Attempts(ctx, "alice", storage.Authenticator)
	if err != nil || a.Failures != 2 {
		t.Fatalf("failures %d (%v), want 2: each check was reserved", a.Failures, err)
	}
}

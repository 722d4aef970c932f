package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// TestConcurrentMixedBatches sends at once reservations under two
// policies, of locked and unlocked factors, with and without an
// enrollment, and then at once accepted and replayed steps: on PostgreSQL
// they meet in the same batches (split by policy). Every call gets the
// answer it would get alone.
func TestConcurrentMixedBatches(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.open(t)
			s := newStore(t, db, b.dialect)
			now := time.UnixMicro(1_700_000_000_000_000).UTC()
			policies := []storage.LockPolicy{
				{MaxFailures: 1, Base: time.Minute, Max: time.Hour},
				{MaxFailures: 3, Base: time.Second, Max: time.Minute},
			}
			const n = 48
			user := func(i int) string { return fmt.Sprintf("mixed-%02d", i) }
			enrolled := func(i int) bool { return i%3 != 0 }
			locked := func(i int) bool { return i%4 == 1 }
			for i := range n {
				if enrolled(i) {
					e := storage.Enrollment{User: user(i), Factor: storage.Authenticator, ID: "id", KeyID: "k",
						CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
					if err := s.BeginEnrollment(ctx, e); err != nil {
						t.Fatal(err)
					}
					if err := s.ConfirmEnrollment(ctx, user(i), storage.Authenticator, "id", 5, now); err != nil {
						t.Fatal(err)
					}
				}
				if locked(i) { // MaxFailures 1 locks at the first reservation
					if _, err := s.ReserveAttempt(ctx, user(i), storage.Authenticator, now.Add(-time.Second), policies[0]); err != nil {
						t.Fatal(err)
					}
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					p := policies[i%2]
					e, a, err := s.ReserveFactor(ctx, user(i), storage.Authenticator, now, p)
					prior := storage.Attempts{}
					if locked(i) {
						prior, _ = storage.NextAttempt(prior, now.Add(-time.Second), policies[0])
					}
					want, ok := storage.NextAttempt(prior, now, p)
					var wantErr error
					switch {
					case !ok:
						wantErr = storage.ErrLocked
					case !enrolled(i):
						wantErr = storage.ErrNotFound
					}
					if !errors.Is(err, wantErr) || a.Failures != want.Failures || !a.LockedUntil.Equal(want.LockedUntil) ||
						!a.LastAt.Equal(want.LastAt) || (wantErr == nil) != (e.User == user(i) && e.LastStep == 5) {
						errs <- fmt.Errorf("ReserveFactor(%s) = %+v, %+v, %v; want %+v, %v", user(i), e, a, err, want, wantErr)
					}
				})
			}
			wg.Wait()
			for i := range n {
				wg.Go(func() {
					step := int64(6)
					if i%2 == 0 {
						step = 5 // a replay
					}
					err := s.AcceptStep(ctx, user(i), storage.Authenticator, step)
					var wantErr error
					switch {
					case !enrolled(i):
						wantErr = storage.ErrNotFound
					case step == 5:
						wantErr = storage.ErrStepReused
					}
					if !errors.Is(err, wantErr) {
						errs <- fmt.Errorf("AcceptStep(%s, %d) = %v, want %v", user(i), step, err, wantErr)
						return
					}
					a, err := s.Attempts(ctx, user(i), storage.Authenticator)
					if err != nil || (wantErr == nil) != (a == storage.Attempts{}) {
						errs <- fmt.Errorf("Attempts(%s) after AcceptStep = %+v, %v (cleared: %v)", user(i), a, err, wantErr == nil)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestClearedStateCleanup checks that the failure state AcceptStep clears
// (a zeroed row on PostgreSQL and MySQL) reads as none, counts afresh
// from the next reservation, and goes at the next DeleteExpired without
// being counted as removed.
func TestClearedStateCleanup(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, b.open(t), b.dialect)
			now := time.UnixMicro(1_700_000_000_000_000).UTC()
			p := storage.LockPolicy{MaxFailures: 3, Base: time.Minute, Max: time.Hour}
			e := storage.Enrollment{User: "c", Factor: storage.Authenticator, ID: "id", KeyID: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.BeginEnrollment(ctx, e); err != nil {
				t.Fatal(err)
			}
			if err := s.ConfirmEnrollment(ctx, "c", storage.Authenticator, "id", 1, now); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, _, err := s.ReserveFactor(ctx, "c", storage.Authenticator, now, p); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AcceptStep(ctx, "c", storage.Authenticator, 2); err != nil {
				t.Fatal(err)
			}
			if a, err := s.Attempts(ctx, "c", storage.Authenticator); err != nil || a != (storage.Attempts{}) {
				t.Fatalf("Attempts after AcceptStep = %+v, %v; want none", a, err)
			}
			if n, err := s.DeleteExpired(ctx, now.Add(time.Minute)); err != nil || n != 0 {
				t.Fatalf("DeleteExpired = %d, %v; want 0 removed (a cleared state is not a record)", n, err)
			}
			later := now.Add(time.Minute)
			_, a, err := s.ReserveFactor(ctx, "c", storage.Authenticator, later, p)
			if err != nil || a.Failures != 1 || !a.LastAt.Equal(later) || !a.LockedUntil.IsZero() {
				t.Fatalf("ReserveFactor after the cleanup = %+v, %v; want a first failure at %v", a, err, later)
			}
		})
	}
}

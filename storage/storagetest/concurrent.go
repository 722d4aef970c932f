package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// Workers is how many goroutines the concurrency cases run at once.
const Workers = 50

func race(n int, fn func(i int) error) (ok int, errs []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var okCount atomic.Int64
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := fn(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			okCount.Add(1)
		}()
	}
	close(start)
	wg.Wait()
	return int(okCount.Load()), errs
}

func expectOne(t *testing.T, what string, ok int, errs []error, want error) {
	t.Helper()
	if ok != 1 {
		t.Fatalf("%s: %d of %d concurrent calls succeeded, want exactly 1", what, ok, Workers)
	}
	for _, err := range errs {
		if !errors.Is(err, want) {
			t.Fatalf("%s: a losing call returned %v, want %v", what, err, want)
		}
	}
}

func testConcurrent(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	const user = "race-u"
	t.Run("AcceptStepOnce", func(t *testing.T) {
		// S3: 50 submissions of one valid code give exactly one success.
		s := newStore(t)
		must(t, s.BeginEnrollment(ctx, pending(user, storage.Authenticator, "id")))
		must(t, s.ConfirmEnrollment(ctx, user, storage.Authenticator, "id", 100, base))
		ok, errs := race(Workers, func(int) error { return s.AcceptStep(ctx, user, storage.Authenticator, 101) })
		expectOne(t, "AcceptStep", ok, errs, storage.ErrStepReused)
	})
	t.Run("ConfirmOnce", func(t *testing.T) {
		s := newStore(t)
		must(t, s.BeginEnrollment(ctx, pending(user, storage.Authenticator, "id")))
		ok, errs := race(Workers, func(int) error {
			return s.ConfirmEnrollment(ctx, user, storage.Authenticator, "id", 7, base)
		})
		expectOne(t, "ConfirmEnrollment", ok, errs, storage.ErrAlreadyVerified)
	})
	t.Run("ConsumeCodeOnce", func(t *testing.T) {
		s := newStore(t)
		hash := []byte("0123456789abcdef0123456789abcdef")
		must(t, s.PutCode(ctx, storage.Code{User: user, Purpose: "p", Hash: hash, ExpiresAt: base.Add(time.Minute)}))
		ok, errs := race(Workers, func(int) error { return s.ConsumeCode(ctx, user, "p", hash, base) })
		expectOne(t, "ConsumeCode", ok, errs, storage.ErrNotFound)
	})
	t.Run("BeginNeverReplacesVerified", func(t *testing.T) {
		s := newStore(t)
		must(t, s.BeginEnrollment(ctx, pending(user, storage.Authenticator, "p0")))
		ok, _ := race(Workers, func(i int) error {
			if i == Workers/2 {
				return s.ConfirmEnrollment(ctx, user, storage.Authenticator, "p0", 1, base)
			}
			return s.BeginEnrollment(ctx, pending(user, storage.Authenticator, fmt.Sprintf("p%d", i+1)))
		})
		got, err := s.Enrollment(ctx, user, storage.Authenticator)
		must(t, err)
		if got.Verified && got.ID != "p0" {
			t.Fatalf("a verified enrollment was replaced: %+v", got)
		}
		if ok == 0 {
			t.Fatal("no call succeeded")
		}
	})
	t.Run("ReserveSendCapped", func(t *testing.T) {
		// S9: concurrent sends never exceed the cap.
		s := newStore(t)
		limit := storage.SendLimit{Window: time.Hour, Max: 5}
		var granted atomic.Int64
		_, errs := race(Workers, func(int) error {
			wait, err := s.ReserveSend(ctx, user, base, limit)
			if err == nil && wait == 0 {
				granted.Add(1)
			}
			return err
		})
		if len(errs) > 0 {
			t.Fatal(errs[0])
		}
		if granted.Load() != 5 {
			t.Fatalf("granted %d sends, want 5", granted.Load())
		}
	})
	t.Run("ReserveAttemptLosesNothing", func(t *testing.T) {
		// S8: reservations under contention are all counted.
		s := newStore(t)
		const per = 4
		ok, errs := race(Workers, func(int) error {
			for range per {
				if _, err := s.ReserveAttempt(ctx, user, storage.Authenticator, base, unbounded); err != nil {
					return err
				}
			}
			return nil
		})
		if ok != Workers {
			t.Fatalf("ReserveAttempt errors: %v", errs)
		}
		if a := stored(t, s, user, storage.Authenticator); a.Failures != Workers*per {
			t.Fatalf("failures = %d, want %d", a.Failures, Workers*per)
		}
	})
	t.Run("ReserveAttemptBounded", func(t *testing.T) {
		// S22: of any number of concurrent checks, MaxFailures are compared.
		s := newStore(t)
		reserveBounded(t, s, user, func() (storage.Attempts, error) {
			return s.ReserveAttempt(ctx, user, storage.Authenticator, base, bounded)
		})
	})
	t.Run("ReserveFactorBounded", func(t *testing.T) {
		s := newStore(t)
		r, ok := s.(storage.ReservingReader)
		if !ok {
			t.Skip("the store has no combined reservation (no storage.ReservingReader)")
		}
		e := enroll(t, s, user, storage.Authenticator, 1)
		for _, c := range []struct {
			user    string
			want    storage.Enrollment
			wantErr error
		}{{user, e, nil}, {"race-nobody", storage.Enrollment{}, storage.ErrNotFound}} {
			reserveBounded(t, s, c.user, func() (storage.Attempts, error) {
				got, a, err := r.ReserveFactor(ctx, c.user, storage.Authenticator, base, bounded)
				switch {
				case errors.Is(err, storage.ErrLocked):
					if got.User != "" || got.ID != "" {
						return a, fmt.Errorf("ErrLocked with enrollment %+v", got)
					}
					return a, err
				case !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil):
					return a, fmt.Errorf("ReserveFactor error %v, want %v", err, c.wantErr)
				case got.User != c.want.User || got.ID != c.want.ID || got.Verified != c.want.Verified:
					return a, fmt.Errorf("ReserveFactor enrollment %+v, want %+v", got, c.want)
				}
				return a, nil
			})
		}
	})
}

// bounded is the policy of the bounded-reservation races: five checks.
var bounded = storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}

// reservers is how many goroutines race for the checks a policy allows.
const reservers = 100

// reserveBounded runs reservers concurrent calls of reserve on a fresh
// (user, AUTHENTICATOR) under bounded, and checks that exactly MaxFailures
// are granted, each with its own count, and the rest get ErrLocked.
func reserveBounded(t *testing.T, s storage.Store, user string, reserve func() (storage.Attempts, error)) {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]bool{}
	ok, errs := race(reservers, func(int) error {
		a, err := reserve()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if counts[a.Failures] {
			return fmt.Errorf("two reservations returned %d failures", a.Failures)
		}
		counts[a.Failures] = true
		return nil
	})
	for _, err := range errs {
		if !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("%s: a refused reservation returned %v, want ErrLocked", user, err)
		}
	}
	if ok != bounded.MaxFailures {
		t.Fatalf("%s: %d of %d concurrent reservations were granted, want %d", user, ok, reservers, bounded.MaxFailures)
	}
	for n := 1; n <= bounded.MaxFailures; n++ {
		if !counts[n] {
			t.Fatalf("%s: no reservation returned %d failures (got %v)", user, n, counts)
		}
	}
	want := storage.Attempts{Failures: bounded.MaxFailures, LockedUntil: base.Add(bounded.Base), LastAt: base}
	sameAttempts(t, user+" after the race", stored(t, s, user, storage.Authenticator), want)
}

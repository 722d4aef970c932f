package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

func testInterrupted(t *testing.T, newStore NewStore) {
	s := newStore(t)
	t.Run("ReserveAttempt", func(t *testing.T) {
		checkCounts(t, s, "interrupted", func(call func(context.Context) error) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(20000))*time.Microsecond)
			defer cancel()
			return call(ctx)
		}, nil)
	})
	t.Run("ConfirmEnrollment", func(t *testing.T) {
		checkConfirm(t, s, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Duration(rand.IntN(20000))*time.Microsecond)
		})
	})
}

// Disrupted checks that s stays consistent while disrupt breaks its
// connections (say, by killing them on the server) during concurrent
// writes: every check it reported as reserved is counted, no enrollment is
// half verified, and the store works again afterwards. Backend tests call
// it with their own way of killing connections.
func Disrupted(t *testing.T, s storage.Store, disrupt func() error) {
	t.Run("ReserveAttempt", func(t *testing.T) {
		checkCounts(t, s, "disrupted", func(call func(context.Context) error) error {
			return call(context.Background())
		}, disrupt)
	})
	t.Run("ConfirmEnrollment", func(t *testing.T) {
		checkConfirm(t, s, func() (context.Context, context.CancelFunc) {
			// Kill the connections while the confirm is under way.
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
				disrupt()
			}()
			return context.Background(), func() { <-done }
		})
	})
}

// checkCounts runs concurrent ReserveAttempt calls (under a policy that
// never locks) through run, optionally disrupting the store meanwhile, and
// checks that the stored count lies between the calls that reported
// success and all calls made: a reservation reported is never lost.
func checkCounts(t *testing.T, s storage.Store, user string, run func(func(context.Context) error) error, disrupt func() error) {
	workers, per := 8, 40
	if disrupt != nil {
		per = 15 // each kill costs a reconnect
	}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	if disrupt != nil {
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(2+rand.IntN(6)) * time.Millisecond):
					disrupt()
				}
			}
		}()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				err := run(func(ctx context.Context) error {
					_, err := s.ReserveAttempt(ctx, user, storage.Authenticator, base, unbounded)
					return err
				})
				if err == nil {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	a := attemptsEventually(t, s, user)
	if int64(a.Failures) < ok.Load() || int64(a.Failures) > ok.Load()+failed.Load() {
		t.Fatalf("stored failures %d, but %d calls reported success and %d failed", a.Failures, ok.Load(), failed.Load())
	}
	t.Logf("%d calls succeeded, %d were cut off; %d failures stored", ok.Load(), failed.Load(), a.Failures)
}

// attemptsEventually reads with a fresh context, retrying while the
// backend reconnects after a disruption.
func attemptsEventually(t *testing.T, s storage.Store, user string) storage.Attempts {
	t.Helper()
	var err error
	for range 100 {
		var a storage.Attempts
		if a, err = s.Attempts(context.Background(), user, storage.Authenticator); err == nil {
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("store did not recover: %v", err)
	return storage.Attempts{}
}

// checkConfirm begins and confirms many enrollments with contexts from
// newCtx, and checks each ends fully pending or fully verified, and
// verified whenever ConfirmEnrollment reported success.
func checkConfirm(t *testing.T, s storage.Store, newCtx func() (context.Context, context.CancelFunc)) {
	bg := context.Background()
	confirmed, cut := 0, 0
	for i := range 60 {
		user := fmt.Sprintf("durable-%d", i)
		e := pending(user, storage.Authenticator, "id")
		var err error
		for range 100 { // set up with a working connection
			if err = s.BeginEnrollment(bg, e); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("store did not recover: %v", err)
		}
		ctx, cancel := newCtx()
		cerr := s.ConfirmEnrollment(ctx, user, storage.Authenticator, "id", 99, base.Add(time.Minute))
		cancel()
		var got storage.Enrollment
		for range 100 {
			if got, err = s.Enrollment(bg, user, storage.Authenticator); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("store did not recover: %v", err)
		}
		verified := got.Verified && got.LastStep == 99 && got.VerifiedAt.Equal(base.Add(time.Minute)) && got.ExpiresAt.IsZero()
		stillPending := !got.Verified && got.LastStep == 0 && got.VerifiedAt.IsZero() && got.ExpiresAt.Equal(e.ExpiresAt)
		switch {
		case !verified && !stillPending:
			t.Fatalf("half-verified enrollment after an interrupted confirm (%v): %+v", cerr, got)
		case cerr == nil && !verified:
			t.Fatalf("ConfirmEnrollment reported success but the enrollment is pending: %+v", got)
		case cerr != nil && errors.Is(cerr, storage.ErrNotFound):
			t.Fatalf("an interruption was reported as a missing enrollment: %v", cerr)
		}
		if cerr == nil {
			confirmed++
		} else {
			cut++
		}
	}
	t.Logf("%d confirms completed, %d cut off; none half done", confirmed, cut)
}

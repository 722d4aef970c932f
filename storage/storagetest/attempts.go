package storagetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// policy is the lockout rule most attempt cases use: three checks, the
// third locks for a minute, and each one after it doubles the lock up to
// an hour.
var policy = storage.LockPolicy{MaxFailures: 3, Base: time.Minute, Max: time.Hour}

// unbounded never locks within the counts the suite reaches; cases that
// only count reservations use it.
var unbounded = storage.LockPolicy{MaxFailures: 1 << 30, Base: time.Minute, Max: time.Hour}

// reserve calls ReserveAttempt and fails the test unless it succeeds.
func reserve(t *testing.T, s storage.Store, user string, f storage.Factor, now time.Time, p storage.LockPolicy) storage.Attempts {
	t.Helper()
	a, err := s.ReserveAttempt(context.Background(), user, f, now, p)
	must(t, err)
	return a
}

// stored returns the failure state the store holds for (user, f).
func stored(t *testing.T, s storage.Store, user string, f storage.Factor) storage.Attempts {
	t.Helper()
	a, err := s.Attempts(context.Background(), user, f)
	must(t, err)
	return a
}

// reserveExpecting calls ReserveAttempt and checks both what it returns and
// what it leaves stored against want.
func reserveExpecting(t *testing.T, s storage.Store, user string, f storage.Factor, now time.Time, p storage.LockPolicy, want storage.Attempts) {
	t.Helper()
	what := fmt.Sprintf("ReserveAttempt(%s, %s) at base+%v", user, f, now.Sub(base))
	sameAttempts(t, what, reserve(t, s, user, f, now, p), want)
	sameAttempts(t, "state after "+what, stored(t, s, user, f), want)
}

// refused checks that a reservation at now is refused with ErrLocked,
// returns the stored state want, and changes nothing.
func refused(t *testing.T, s storage.Store, user string, f storage.Factor, now time.Time, p storage.LockPolicy, want storage.Attempts) {
	t.Helper()
	what := fmt.Sprintf("locked ReserveAttempt(%s, %s) at base+%v", user, f, now.Sub(base))
	a, err := s.ReserveAttempt(context.Background(), user, f, now, p)
	wantErr(t, err, storage.ErrLocked)
	sameAttempts(t, what, a, want)
	sameAttempts(t, "state after "+what, stored(t, s, user, f), want)
}

// testReserveAttempt walks one factor through the lockout rule S22.
func testReserveAttempt(t *testing.T, newStore NewStore) {
	s := newStore(t)
	const u, f = "attempt-seq", storage.Authenticator
	sameAttempts(t, "Attempts of an unknown user", stored(t, s, u, f), storage.Attempts{})

	// Checks 1..MaxFailures are allowed; the MaxFailures-th sets a lock of Base.
	var want storage.Attempts
	var now time.Time
	for i := 1; i <= policy.MaxFailures; i++ {
		now = base.Add(time.Duration(i) * time.Second)
		want = storage.Attempts{Failures: i, LastAt: now}
		if i == policy.MaxFailures {
			want.LockedUntil = now.Add(policy.Base)
		}
		reserveExpecting(t, s, u, f, now, policy, want)
	}
	// While locked, up to its last millisecond, every check is refused and
	// nothing changes, whatever policy the caller passes.
	lockEnd := want.LockedUntil
	for _, at := range []time.Time{now, now.Add(30 * time.Second), lockEnd.Add(-time.Millisecond)} {
		refused(t, s, u, f, at, policy, want)
	}
	refused(t, s, u, f, now.Add(time.Second), unbounded, want)

	// The lock ends at LockedUntil: the next check is allowed and doubles it.
	now = lockEnd
	want = storage.Attempts{Failures: policy.MaxFailures + 1, LockedUntil: now.Add(2 * policy.Base), LastAt: now}
	reserveExpecting(t, s, u, f, now, policy, want)
	refused(t, s, u, f, now.Add(time.Minute), policy, want)
	now = want.LockedUntil
	want = storage.Attempts{Failures: policy.MaxFailures + 2, LockedUntil: now.Add(4 * policy.Base), LastAt: now}
	reserveExpecting(t, s, u, f, now, policy, want)
}

// testSaturation reserves far past MaxFailures: the lock doubles up to Max
// and stays there, never overflowing into a short or negative lock.
func testSaturation(t *testing.T, newStore NewStore) {
	s := newStore(t)
	const u, f = "attempt-saturate", storage.Email
	p := storage.LockPolicy{MaxFailures: 1, Base: time.Minute, Max: time.Hour}
	now := base
	wantLock := p.Base
	for i := 1; i <= 70; i++ {
		a := reserve(t, s, u, f, now, p)
		lock := a.LockedUntil.Sub(now)
		if lock < p.Base || lock > p.Max {
			t.Fatalf("reservation %d locks for %v, outside [%v, %v]", i, lock, p.Base, p.Max)
		}
		if lock != wantLock || a.Failures != i || !sameTime(a.LastAt, now) {
			t.Fatalf("reservation %d = %+v (lock %v), want %d failures, lock %v, LastAt %v", i, a, lock, i, wantLock, now)
		}
		wantLock = min(2*wantLock, p.Max)
		now = a.LockedUntil
	}
	a := stored(t, s, u, f)
	if a.Failures != 70 || a.LockedUntil.Sub(a.LastAt) != p.Max {
		t.Fatalf("state after 70 reservations = %+v, want 70 failures and a lock of %v", a, p.Max)
	}
}

// testResetAttempts checks that ResetAttempts clears the count and the lock.
func testResetAttempts(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u, f = "attempt-reset", storage.Authenticator
	must(t, s.ResetAttempts(ctx, u, f)) // nothing recorded: no-op
	sameAttempts(t, "after resetting nothing", stored(t, s, u, f), storage.Attempts{})
	for i := range policy.MaxFailures {
		reserve(t, s, u, f, base.Add(time.Duration(i)*time.Second), policy)
	}
	must(t, s.ResetAttempts(ctx, u, f))
	must(t, s.ResetAttempts(ctx, u, f))
	sameAttempts(t, "after ResetAttempts", stored(t, s, u, f), storage.Attempts{})
	// The lock went with the count: a check inside the old lock is allowed.
	at := base.Add(10 * time.Second)
	reserveExpecting(t, s, u, f, at, policy, storage.Attempts{Failures: 1, LastAt: at})
}

// testAttemptsPerFactor checks that failure state is kept per (user, factor).
func testAttemptsPerFactor(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u, other = "attempt-iso", "attempt-iso-other"
	var locked storage.Attempts
	for i := range policy.MaxFailures {
		locked = reserve(t, s, u, storage.Authenticator, base, policy)
		if i < 2 {
			reserve(t, s, u, storage.Recovery, base, policy)
		}
	}
	// A locked factor locks neither the user's other factors nor anyone else.
	reserveExpecting(t, s, u, storage.Email, base.Add(time.Second), policy,
		storage.Attempts{Failures: 1, LastAt: base.Add(time.Second)})
	reserveExpecting(t, s, other, storage.Authenticator, base.Add(time.Second), policy,
		storage.Attempts{Failures: 1, LastAt: base.Add(time.Second)})
	sameAttempts(t, "RECOVERY", stored(t, s, u, storage.Recovery), storage.Attempts{Failures: 2, LastAt: base})
	sameAttempts(t, "AUTHENTICATOR", stored(t, s, u, storage.Authenticator), locked)
	// Resetting one factor leaves the others.
	must(t, s.ResetAttempts(ctx, u, storage.Authenticator))
	sameAttempts(t, "reset AUTHENTICATOR", stored(t, s, u, storage.Authenticator), storage.Attempts{})
	sameAttempts(t, "EMAIL after resetting AUTHENTICATOR", stored(t, s, u, storage.Email),
		storage.Attempts{Failures: 1, LastAt: base.Add(time.Second)})
	sameAttempts(t, "RECOVERY after resetting AUTHENTICATOR", stored(t, s, u, storage.Recovery),
		storage.Attempts{Failures: 2, LastAt: base})
	sameAttempts(t, "another user after the reset", stored(t, s, other, storage.Authenticator),
		storage.Attempts{Failures: 1, LastAt: base.Add(time.Second)})
}

// testAcceptStepClears checks that an accepted step is the success that
// clears the failure state of its factor, and that a refused one is not.
func testAcceptStepClears(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u, f = "accept-clears", storage.Authenticator
	enroll(t, s, u, f, 10)
	// The MaxFailures-th check is compared, so it may succeed: its lock
	// goes too.
	var locked storage.Attempts
	for i := range policy.MaxFailures {
		locked = reserve(t, s, u, f, base.Add(time.Duration(i)*time.Second), policy)
	}
	email := reserve(t, s, u, storage.Email, base, policy)
	other := reserve(t, s, "accept-clears-other", f, base, policy)

	wantErr(t, s.AcceptStep(ctx, u, f, 10), storage.ErrStepReused)
	sameAttempts(t, "after ErrStepReused", stored(t, s, u, f), locked)
	must(t, s.AcceptStep(ctx, u, f, 11))
	sameAttempts(t, "after an accepted step", stored(t, s, u, f), storage.Attempts{})
	sameAttempts(t, "EMAIL after an AUTHENTICATOR success", stored(t, s, u, storage.Email), email)
	sameAttempts(t, "another user after the success", stored(t, s, "accept-clears-other", f), other)
	at := base.Add(10 * time.Second) // inside the lock that was cleared
	reserveExpecting(t, s, u, f, at, policy, storage.Attempts{Failures: 1, LastAt: at})

	// ErrNotFound changes nothing: no enrollment of the factor, no
	// enrollment at all, or a pending one.
	wantErr(t, s.AcceptStep(ctx, u, storage.Email, 50), storage.ErrNotFound)
	sameAttempts(t, "EMAIL after ErrNotFound", stored(t, s, u, storage.Email), email)
	const none, pend = "accept-none", "accept-pending"
	a := reserve(t, s, none, f, base, policy)
	wantErr(t, s.AcceptStep(ctx, none, f, 50), storage.ErrNotFound)
	sameAttempts(t, "after ErrNotFound (no enrollment)", stored(t, s, none, f), a)
	must(t, s.BeginEnrollment(ctx, pending(pend, f, "p")))
	a = reserve(t, s, pend, f, base, policy)
	wantErr(t, s.AcceptStep(ctx, pend, f, 50), storage.ErrNotFound)
	sameAttempts(t, "after ErrNotFound (pending enrollment)", stored(t, s, pend, f), a)
}

// testReserveFactor checks the combined reservation and read of
// storage.ReservingReader.
func testReserveFactor(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.ReservingReader)
	if !ok {
		t.Skip("the store has no combined reservation (no storage.ReservingReader)")
	}
	const u, f = "rf-user", storage.Authenticator
	call := func(user string, f storage.Factor, now time.Time, wantE storage.Enrollment, wantA storage.Attempts, wantErrIs error) {
		t.Helper()
		e, a, err := r.ReserveFactor(ctx, user, f, now, policy)
		if wantErrIs == nil {
			must(t, err)
		} else {
			wantErr(t, err, wantErrIs)
		}
		what := fmt.Sprintf("ReserveFactor(%s, %s) at base+%v", user, f, now.Sub(base))
		sameEnrollment(t, e, wantE)
		sameAttempts(t, what, a, wantA)
		sameAttempts(t, "state after "+what, stored(t, s, user, f), wantA)
	}
	// No enrollment: the check is reserved all the same.
	call(u, f, base, storage.Enrollment{}, storage.Attempts{Failures: 1, LastAt: base}, storage.ErrNotFound)
	// A pending enrollment is returned, as Enrollment would.
	e := pending(u, f, "rf-id")
	must(t, s.BeginEnrollment(ctx, e))
	at := base.Add(time.Second)
	call(u, f, at, e, storage.Attempts{Failures: 2, LastAt: at}, nil)
	// A verified one too, with the MaxFailures-th check allowed and locking.
	must(t, s.ConfirmEnrollment(ctx, u, f, "rf-id", 7, at))
	e = verify(e, 7, at)
	at = base.Add(2 * time.Second)
	locked := storage.Attempts{Failures: 3, LockedUntil: at.Add(policy.Base), LastAt: at}
	call(u, f, at, e, locked, nil)
	// Locked: a zero enrollment, the stored state, nothing reserved.
	call(u, f, at.Add(time.Second), storage.Enrollment{}, locked, storage.ErrLocked)
	// The user's other factor is not locked nor counted.
	call(u, storage.Email, at, storage.Enrollment{}, storage.Attempts{Failures: 1, LastAt: at}, storage.ErrNotFound)
	sameAttempts(t, "AUTHENTICATOR after an EMAIL reservation", stored(t, s, u, f), locked)
	// An accepted step clears what ReserveFactor reserved.
	must(t, s.AcceptStep(ctx, u, f, 8))
	e.LastStep = 8
	at = base.Add(5 * time.Second)
	call(u, f, at, e, storage.Attempts{Failures: 1, LastAt: at}, nil)

	// Locked without an enrollment: ErrLocked, not ErrNotFound (S26).
	const none = "rf-none"
	for range policy.MaxFailures {
		locked = reserve(t, s, none, f, base, policy)
	}
	call(none, f, base.Add(time.Second), storage.Enrollment{}, locked, storage.ErrLocked)
}

// testSync checks storage.Syncer: Sync after reservations returns nil and
// leaves the state as it was; with a cancelled context it fails.
func testSync(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	sy, ok := s.(storage.Syncer)
	if !ok {
		t.Skip("the store's reservations are durable when they return (no storage.Syncer)")
	}
	must(t, sy.Sync(ctx)) // nothing to sync
	const u, f = "sync-user", storage.Email
	a := reserve(t, s, u, f, base, policy)
	must(t, sy.Sync(ctx))
	sameAttempts(t, "after Sync", stored(t, s, u, f), a)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := sy.Sync(cancelled); err == nil {
		t.Error("Sync with a cancelled context returned nil")
	}
}

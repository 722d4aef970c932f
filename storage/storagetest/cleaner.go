package storagetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// testCleaner counts what DeleteExpired removes, so it needs a store of its
// own (as every case gets from NewStore).
func testCleaner(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	c, ok := s.(storage.Cleaner)
	if !ok {
		t.Skip("the store expires records by itself (no storage.Cleaner)")
	}
	const old, verified, fresh = "clean-old", "clean-verified", "clean-fresh"
	must(t, s.BeginEnrollment(ctx, pending(old, storage.Authenticator, "o"))) // expires base+10m
	enroll(t, s, verified, storage.Authenticator, 1)
	freshEnrollment := pending(fresh, storage.Authenticator, "f")
	freshEnrollment.ExpiresAt = base.Add(time.Hour)
	must(t, s.BeginEnrollment(ctx, freshEnrollment))
	must(t, s.PutCode(ctx, storage.Code{User: old, Purpose: "p", Hash: []byte{1}, ExpiresAt: base.Add(time.Minute)}))
	must(t, s.PutCode(ctx, storage.Code{User: fresh, Purpose: "p", Hash: []byte{1}, ExpiresAt: base.Add(time.Hour)}))
	must(t, s.ReplaceRecoveryCodes(ctx, verified, [][]byte{bytes.Repeat([]byte{1}, 32)}))
	sendLimit := storage.SendLimit{Window: time.Hour, Max: 1}
	_, err := s.ReserveSend(ctx, "clean-send", base, sendLimit)
	must(t, err)

	// Failure state, judged at the second cutoff below (base+AttemptIdle+1m).
	never := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
	// Idle and never locked: forgotten.
	idle := reserve(t, s, "clean-idle", storage.Authenticator, base, never)
	// Idle, and its lock ended long ago: forgotten.
	short := storage.LockPolicy{MaxFailures: 1, Base: time.Hour, Max: time.Hour}
	reserve(t, s, "clean-lock-ended", storage.Authenticator, base, short)
	// Idle but still locked at the cutoff: kept.
	long := storage.LockPolicy{MaxFailures: 1, Base: 2 * storage.AttemptIdle, Max: 2 * storage.AttemptIdle}
	locked := reserve(t, s, "clean-locked", storage.Authenticator, base, long)
	// Used recently: kept.
	recent := reserve(t, s, "clean-recent", storage.Authenticator, base.Add(2*time.Minute), never)

	n, err := c.DeleteExpired(ctx, base.Add(30*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteExpired removed %d records, want 2 (one enrollment, one code)", n)
	}
	if _, err := s.Enrollment(ctx, old, storage.Authenticator); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired pending enrollment kept: %v", err)
	}
	for _, u := range []string{verified, fresh} {
		if _, err := s.Enrollment(ctx, u, storage.Authenticator); err != nil {
			t.Fatalf("%s enrollment removed: %v", u, err)
		}
	}
	wantErr(t, s.ConsumeCode(ctx, old, "p", []byte{1}, base), storage.ErrNotFound)
	must(t, s.ConsumeCode(ctx, fresh, "p", []byte{1}, base))
	// Failure state is kept until idle for AttemptIdle.
	sameAttempts(t, "failure state after the first cleanup", stored(t, s, "clean-idle", storage.Authenticator), idle)
	// The send throttle is kept until idle for SendIdle.
	if wait, _ := s.ReserveSend(ctx, "clean-send", base.Add(30*time.Minute), sendLimit); wait == 0 {
		t.Fatal("DeleteExpired dropped live send-throttle state")
	}

	cutoff := base.Add(max(storage.AttemptIdle, storage.SendIdle) + time.Minute)
	n, err = c.DeleteExpired(ctx, cutoff)
	must(t, err)
	if n != 4 {
		t.Fatalf("second DeleteExpired removed %d records, want 4: the expired enrollment, the idle send state "+
			"and the two idle, unlocked failure states", n)
	}
	if _, err := s.Enrollment(ctx, verified, storage.Authenticator); err != nil {
		t.Fatalf("verified enrollment removed: %v", err)
	}
	if left, err := s.RecoveryCodesLeft(ctx, verified); err != nil || left != 1 {
		t.Fatalf("recovery codes after cleanup: %d, %v; want 1", left, err)
	}
	for _, u := range []string{"clean-idle", "clean-lock-ended"} {
		sameAttempts(t, "idle failure state of "+u, stored(t, s, u, storage.Authenticator), storage.Attempts{})
	}
	sameAttempts(t, "locked failure state", stored(t, s, "clean-locked", storage.Authenticator), locked)
	sameAttempts(t, "recent failure state", stored(t, s, "clean-recent", storage.Authenticator), recent)
	// The lock kept is still enforced.
	_, err = s.ReserveAttempt(ctx, "clean-locked", storage.Authenticator, cutoff, long)
	wantErr(t, err, storage.ErrLocked)
}

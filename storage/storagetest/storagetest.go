// Package storagetest is the conformance suite every storage.Store must
// pass. A backend's test calls Run with a function that returns a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t testing.TB) storage.Store { return memstore.New() })
//	}
//
// The suite pins each contract written on the storage interfaces, including
// the atomic ones under concurrency, so run it with -race.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// NewStore returns an empty store for one test. It may register cleanup
// with t.Cleanup.
type NewStore func(t testing.TB) storage.Store

// base is the suite's "now": the wall clock at start-up, at millisecond
// precision, which every backend keeps exactly. It is near the real time so
// that backends which also expire records by the wall clock (Redis TTLs)
// agree with the times the suite passes.
var base = time.Now().UTC().Truncate(time.Millisecond)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Enrollment", func(t *testing.T) { testEnrollment(t, newStore) })
	t.Run("ConfirmEnrollment", func(t *testing.T) { testConfirm(t, newStore) })
	t.Run("AcceptStep", func(t *testing.T) { testAcceptStep(t, newStore) })
	t.Run("Codes", func(t *testing.T) { testCodes(t, newStore) })
	t.Run("Attempts", func(t *testing.T) { testAttempts(t, newStore) })
	t.Run("ReserveSend", func(t *testing.T) { testReserveSend(t, newStore) })
	t.Run("Limits", func(t *testing.T) { testLimits(t, newStore) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, newStore) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore) })
	t.Run("Cleaner", func(t *testing.T) { testCleaner(t, newStore) })
	t.Run("Interrupted", func(t *testing.T) { testInterrupted(t, newStore) })
	t.Run("RecoveryCodes", func(t *testing.T) { testRecovery(t, newStore) })
	t.Run("Reseal", func(t *testing.T) { testReseal(t, newStore) })
	t.Run("ReleaseSend", func(t *testing.T) { testReleaseSend(t, newStore) })
	t.Run("FactorState", func(t *testing.T) { testFactorState(t, newStore) })
}

func testFactorState(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.StateReader)
	if !ok {
		t.Skip("the store has no combined read (no storage.StateReader)")
	}
	_, a, err := r.FactorState(ctx, "u", storage.Authenticator)
	wantErr(t, err, storage.ErrNotFound)
	if a.Failures != 0 {
		t.Fatalf("attempts of nobody = %+v", a)
	}
	_, err = s.RecordFailure(ctx, "u", storage.Authenticator)
	must(t, err)
	must(t, s.LockUntil(ctx, "u", storage.Authenticator, base.Add(time.Hour)))
	_, a, err = r.FactorState(ctx, "u", storage.Authenticator)
	wantErr(t, err, storage.ErrNotFound)
	if a.Failures != 1 || !a.LockedUntil.Equal(base.Add(time.Hour)) {
		t.Fatalf("attempts without enrollment = %+v", a)
	}
	e := pending("u", storage.Authenticator, "id")
	must(t, s.BeginEnrollment(ctx, e))
	got, a, err := r.FactorState(ctx, "u", storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, e)
	if a.Failures != 1 {
		t.Fatalf("attempts = %+v", a)
	}
	must(t, s.ResetAttempts(ctx, "u", storage.Authenticator))
	_, a, err = r.FactorState(ctx, "u", storage.Authenticator)
	must(t, err)
	if a.Failures != 0 || !a.LockedUntil.IsZero() {
		t.Fatalf("attempts after reset = %+v", a)
	}
}

func testReleaseSend(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.SendReleaser)
	if !ok {
		t.Skip("the store cannot release sends (no storage.SendReleaser)")
	}
	limit := storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 2}
	reserve := func(at time.Time) time.Duration {
		t.Helper()
		wait, err := s.ReserveSend(ctx, "k", at, limit)
		must(t, err)
		return wait
	}
	must(t, r.ReleaseSend(ctx, "k", base)) // nothing recorded: no-op
	if reserve(base) != 0 {
		t.Fatal("first send refused")
	}
	must(t, r.ReleaseSend(ctx, "k", base.Add(time.Second))) // not the last send: no-op
	if reserve(base.Add(10*time.Second)) == 0 {
		t.Fatal("a non-matching release freed the gap")
	}
	must(t, r.ReleaseSend(ctx, "k", base))
	// The undelivered send no longer blocks the next one, nor counts.
	if reserve(base.Add(10*time.Second)) != 0 {
		t.Fatal("send after a release refused")
	}
	if reserve(base.Add(2*time.Minute)) != 0 {
		t.Fatal("the released send still counts toward the cap")
	}
	if reserve(base.Add(4*time.Minute)) == 0 {
		t.Fatal("the cap of 2 was not kept")
	}
}

func testReseal(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.Resealer)
	if !ok {
		t.Skip("the store cannot reseal secrets (no storage.Resealer)")
	}
	e := pending("u", storage.Authenticator, "id")
	must(t, s.BeginEnrollment(ctx, e))
	must(t, s.ConfirmEnrollment(ctx, "u", storage.Authenticator, "id", 5, base))
	wantErr(t, r.ResealSecret(ctx, "u", storage.Authenticator, "other-id", "k1", []byte("new"), "k2"), storage.ErrNotFound)
	wantErr(t, r.ResealSecret(ctx, "u", storage.Authenticator, "id", "k0", []byte("new"), "k2"), storage.ErrNotFound)
	wantErr(t, r.ResealSecret(ctx, "nobody", storage.Authenticator, "id", "k1", []byte("new"), "k2"), storage.ErrNotFound)
	must(t, r.ResealSecret(ctx, "u", storage.Authenticator, "id", "k1", []byte("resealed"), "k2"))
	got, err := s.Enrollment(ctx, "u", storage.Authenticator)
	must(t, err)
	if string(got.Secret) != "resealed" || got.KeyID != "k2" || !got.Verified || got.LastStep != 5 {
		t.Fatalf("after reseal: %+v", got)
	}
	// The second of two racing reseals finds the key id changed.
	wantErr(t, r.ResealSecret(ctx, "u", storage.Authenticator, "id", "k1", []byte("again"), "k2"), storage.ErrNotFound)
}

func testRecovery(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.RecoveryStore)
	if !ok {
		t.Skip("the store has no recovery codes (no storage.RecoveryStore)")
	}
	left := func(u string) int {
		t.Helper()
		n, err := r.RecoveryCodesLeft(ctx, u)
		must(t, err)
		return n
	}
	h := func(i byte) []byte { return bytes.Repeat([]byte{i}, 32) }
	if left("u") != 0 {
		t.Fatal("a fresh user has recovery codes")
	}
	wantErr(t, r.UseRecoveryCode(ctx, "u", h(1)), storage.ErrNotFound)
	must(t, r.ReplaceRecoveryCodes(ctx, "u", [][]byte{h(1), h(2), h(3)}))
	must(t, r.ReplaceRecoveryCodes(ctx, "other", [][]byte{h(1)}))
	if left("u") != 3 {
		t.Fatalf("left = %d, want 3", left("u"))
	}
	must(t, r.UseRecoveryCode(ctx, "u", h(2)))
	wantErr(t, r.UseRecoveryCode(ctx, "u", h(2)), storage.ErrNotFound) // single use (S12)
	if left("u") != 2 || left("other") != 1 {
		t.Fatalf("left = %d and %d, want 2 and 1", left("u"), left("other"))
	}
	// Regenerating invalidates the old set (S12).
	must(t, r.ReplaceRecoveryCodes(ctx, "u", [][]byte{h(7), h(8)}))
	wantErr(t, r.UseRecoveryCode(ctx, "u", h(1)), storage.ErrNotFound)
	must(t, r.UseRecoveryCode(ctx, "u", h(8)))
	must(t, r.ReplaceRecoveryCodes(ctx, "u", nil))
	if left("u") != 0 {
		t.Fatal("an empty replacement kept codes")
	}
	// Concurrent uses of one code: exactly one succeeds.
	must(t, r.ReplaceRecoveryCodes(ctx, "race", [][]byte{h(9)}))
	ok2, errs := race(Workers, func(int) error { return r.UseRecoveryCode(ctx, "race", h(9)) })
	expectOne(t, "UseRecoveryCode", ok2, errs, storage.ErrNotFound)
}

func testCleaner(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	c, ok := s.(storage.Cleaner)
	if !ok {
		t.Skip("the store expires records by itself (no storage.Cleaner)")
	}
	must(t, s.BeginEnrollment(ctx, pending("old", storage.Authenticator, "o")))      // expires base+10m
	must(t, s.BeginEnrollment(ctx, pending("verified", storage.Authenticator, "v"))) // verified below
	must(t, s.ConfirmEnrollment(ctx, "verified", storage.Authenticator, "v", 1, base))
	fresh := pending("fresh", storage.Authenticator, "f")
	fresh.ExpiresAt = base.Add(time.Hour)
	must(t, s.BeginEnrollment(ctx, fresh))
	must(t, s.PutCode(ctx, storage.Code{User: "old", Purpose: "p", Hash: []byte{1}, ExpiresAt: base.Add(time.Minute)}))
	must(t, s.PutCode(ctx, storage.Code{User: "fresh", Purpose: "p", Hash: []byte{1}, ExpiresAt: base.Add(time.Hour)}))
	_, err := s.RecordFailure(ctx, "old", storage.Authenticator)
	must(t, err)
	_, err = s.ReserveSend(ctx, "idle", base, storage.SendLimit{Window: time.Hour, Max: 1})
	must(t, err)

	n, err := c.DeleteExpired(ctx, base.Add(30*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteExpired removed %d records, want 2 (one enrollment, one code)", n)
	}
	if _, err := s.Enrollment(ctx, "old", storage.Authenticator); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired pending enrollment kept: %v", err)
	}
	for _, u := range []string{"verified", "fresh"} {
		if _, err := s.Enrollment(ctx, u, storage.Authenticator); err != nil {
			t.Fatalf("%s enrollment removed: %v", u, err)
		}
	}
	wantErr(t, s.ConsumeCode(ctx, "old", "p", []byte{1}, base), storage.ErrNotFound)
	must(t, s.ConsumeCode(ctx, "fresh", "p", []byte{1}, base))
	if a, _ := s.Attempts(ctx, "old", storage.Authenticator); a.Failures != 1 {
		t.Fatal("DeleteExpired removed a failure count")
	}
	// The send throttle is kept until idle for SendIdle.
	if wait, _ := s.ReserveSend(ctx, "idle", base.Add(30*time.Minute), storage.SendLimit{Window: time.Hour, Max: 1}); wait == 0 {
		t.Fatal("DeleteExpired dropped live send-throttle state")
	}
	n, err = c.DeleteExpired(ctx, base.Add(storage.SendIdle+time.Minute))
	must(t, err)
	if n < 2 {
		t.Fatalf("second DeleteExpired removed %d, want the fresh code's expired enrollment and the idle send state", n)
	}
}

func pending(user string, f storage.Factor, id string) storage.Enrollment {
	return storage.Enrollment{User: user, Factor: f, ID: id, Secret: []byte("sealed-" + id), KeyID: "k1",
		CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("error = %v, want %v", got, want)
	}
}

func sameEnrollment(t *testing.T, got, want storage.Enrollment) {
	t.Helper()
	if got.User != want.User || got.Factor != want.Factor || got.ID != want.ID || got.Verified != want.Verified ||
		!bytes.Equal(got.Secret, want.Secret) || got.KeyID != want.KeyID || got.LastStep != want.LastStep ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.VerifiedAt.Equal(want.VerifiedAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("enrollment =\n  %+v\nwant\n  %+v", got, want)
	}
}

func testEnrollment(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "alice@example.com"

	_, err := s.Enrollment(ctx, u, storage.Authenticator)
	wantErr(t, err, storage.ErrNotFound)
	list, err := s.Enrollments(ctx, u)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("Enrollments of unknown user = %v, want none", list)
	}

	first := pending(u, storage.Authenticator, "id-1")
	must(t, s.BeginEnrollment(ctx, first))
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, first)

	// A new pending enrollment replaces the old one.
	second := pending(u, storage.Authenticator, "id-2")
	second.CreatedAt = base.Add(time.Minute)
	must(t, s.BeginEnrollment(ctx, second))
	got, err = s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, second)

	email := storage.Enrollment{User: u, Factor: storage.Email, ID: "id-e", CreatedAt: base,
		ExpiresAt: base.Add(5 * time.Minute)}
	must(t, s.BeginEnrollment(ctx, email))
	list, err = s.Enrollments(ctx, u)
	must(t, err)
	if len(list) != 2 || list[0].Factor != storage.Authenticator || list[1].Factor != storage.Email {
		t.Fatalf("Enrollments = %+v, want AUTHENTICATOR then EMAIL", list)
	}
	sameEnrollment(t, list[1], email)
	if len(list[1].Secret) != 0 {
		t.Fatalf("EMAIL secret = %q, want empty", list[1].Secret)
	}

	// A verified enrollment is never replaced.
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-2", 100, base.Add(time.Minute)))
	wantErr(t, s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "id-3")), storage.ErrAlreadyVerified)
	got, err = s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if got.ID != "id-2" || !got.Verified || got.LastStep != 100 {
		t.Fatalf("verified enrollment changed: %+v", got)
	}

	existed, err := s.DeleteEnrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if !existed {
		t.Fatal("DeleteEnrollment of a verified enrollment reported false")
	}
	existed, err = s.DeleteEnrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if existed {
		t.Fatal("DeleteEnrollment of a missing enrollment reported true")
	}
	_, err = s.Enrollment(ctx, u, storage.Authenticator)
	wantErr(t, err, storage.ErrNotFound)
	// Deleting one factor keeps the other.
	_, err = s.Enrollment(ctx, u, storage.Email)
	must(t, err)
	// After a delete a new enrollment starts from scratch.
	must(t, s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "id-4")))
	got, err = s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if got.Verified || got.LastStep != 0 || !got.VerifiedAt.IsZero() {
		t.Fatalf("re-enrollment kept old state: %+v", got)
	}
}

func testConfirm(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "bob"
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "nope", 1, base), storage.ErrNotFound)

	e := pending(u, storage.Authenticator, "id-1")
	must(t, s.BeginEnrollment(ctx, e))
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "other-id", 1, base), storage.ErrNotFound)
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Email, "id-1", 1, base), storage.ErrNotFound)
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-1", 1, e.ExpiresAt), storage.ErrExpired)

	at := base.Add(2 * time.Minute)
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-1", 57, at))
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	want := e
	want.Verified, want.VerifiedAt, want.ExpiresAt, want.LastStep = true, at, time.Time{}, 57
	sameEnrollment(t, got, want)
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-1", 58, at), storage.ErrAlreadyVerified)
	// The step that confirmed the enrollment is used (S3).
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 57), storage.ErrStepReused)
}

func testAcceptStep(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "carol"
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 10), storage.ErrNotFound)
	must(t, s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "id")))
	// A pending enrollment accepts no step.
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 10), storage.ErrNotFound)
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 10, base))

	// 20000000000/30 needs more than 32 bits (S1).
	const big = int64(20000000000 / 30)
	for _, c := range []struct {
		step int64
		want error
	}{
		{10, storage.ErrStepReused}, {9, storage.ErrStepReused}, {11, nil}, {11, storage.ErrStepReused},
		{13, nil}, {12, storage.ErrStepReused}, {big, nil}, {big, storage.ErrStepReused}, {big + 1, nil},
	} {
		err := s.AcceptStep(ctx, u, storage.Authenticator, c.step)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Fatalf("AcceptStep(%d) = %v, want %v", c.step, err, c.want)
		}
	}
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if got.LastStep != big+1 {
		t.Fatalf("LastStep = %d, want %d", got.LastStep, big+1)
	}
}

func testCodes(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u, p = "dave", "enroll-email"
	h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	exp := base.Add(10 * time.Minute)

	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	wantErr(t, s.ConsumeCode(ctx, u, p, h2, base), storage.ErrCodeMismatch)
	wantErr(t, s.ConsumeCode(ctx, u, "other", h1, base), storage.ErrNotFound)
	must(t, s.ConsumeCode(ctx, u, p, h1, base.Add(time.Minute))) // a mismatch did not delete it
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)

	// A resend invalidates the earlier code (S10).
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h2, ExpiresAt: exp}))
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrCodeMismatch)
	must(t, s.ConsumeCode(ctx, u, p, h2, base))

	// An expired code fails with ErrExpired once, then is gone.
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, exp), storage.ErrExpired)
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)

	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	must(t, s.DeleteCode(ctx, u, p))
	must(t, s.DeleteCode(ctx, u, p))
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)
}

func testAttempts(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "erin"
	a, err := s.Attempts(ctx, u, storage.Authenticator)
	must(t, err)
	if a.Failures != 0 || !a.LockedUntil.IsZero() {
		t.Fatalf("Attempts of unknown user = %+v, want zero", a)
	}
	for i := 1; i <= 3; i++ {
		n, err := s.RecordFailure(ctx, u, storage.Authenticator)
		must(t, err)
		if n != i {
			t.Fatalf("RecordFailure #%d returned %d", i, n)
		}
	}
	// Another factor counts separately.
	n, err := s.RecordFailure(ctx, u, storage.Email)
	must(t, err)
	if n != 1 {
		t.Fatalf("EMAIL failure count = %d, want 1", n)
	}
	later, earlier := base.Add(time.Hour), base.Add(time.Minute)
	must(t, s.LockUntil(ctx, u, storage.Authenticator, later))
	must(t, s.LockUntil(ctx, u, storage.Authenticator, earlier)) // the later lock stays
	a, err = s.Attempts(ctx, u, storage.Authenticator)
	must(t, err)
	if a.Failures != 3 || !a.LockedUntil.Equal(later) {
		t.Fatalf("Attempts = %+v, want 3 failures locked until %v", a, later)
	}
	must(t, s.ResetAttempts(ctx, u, storage.Authenticator))
	must(t, s.ResetAttempts(ctx, u, storage.Authenticator))
	a, err = s.Attempts(ctx, u, storage.Authenticator)
	must(t, err)
	if a.Failures != 0 || !a.LockedUntil.IsZero() {
		t.Fatalf("Attempts after reset = %+v, want zero", a)
	}
	a, err = s.Attempts(ctx, u, storage.Email)
	must(t, err)
	if a.Failures != 1 {
		t.Fatalf("reset of AUTHENTICATOR touched EMAIL: %+v", a)
	}
	// A lock without failures is kept too.
	must(t, s.LockUntil(ctx, "frank", storage.Email, later))
	a, err = s.Attempts(ctx, "frank", storage.Email)
	must(t, err)
	if !a.LockedUntil.Equal(later) {
		t.Fatalf("LockUntil on a fresh key = %+v", a)
	}
}

func testReserveSend(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	limit := storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 3}
	reserve := func(key string, at time.Time) time.Duration {
		t.Helper()
		wait, err := s.ReserveSend(ctx, key, at, limit)
		must(t, err)
		return wait
	}
	if w := reserve("k", base); w != 0 {
		t.Fatalf("first send waits %v", w)
	}
	if w := reserve("k", base.Add(20*time.Second)); w != 40*time.Second {
		t.Fatalf("send within MinGap waits %v, want 40s", w)
	}
	if w := reserve("other", base.Add(20*time.Second)); w != 0 {
		t.Fatalf("another key waits %v", w)
	}
	if w := reserve("k", base.Add(time.Minute)); w != 0 {
		t.Fatalf("second send after MinGap waits %v", w)
	}
	if w := reserve("k", base.Add(2*time.Minute)); w != 0 {
		t.Fatalf("third send waits %v", w)
	}
	if w := reserve("k", base.Add(10*time.Minute)); w != 50*time.Minute {
		t.Fatalf("fourth send in the window waits %v, want 50m", w)
	}
	if w := reserve("k", base.Add(time.Hour)); w != 0 {
		t.Fatalf("send in a new window waits %v", w)
	}
}

func testLimits(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	users := []string{
		strings.Repeat("u", storage.MaxUserLen),
		"ユーザー@例え.jp",
		"emoji-😀-user",
		"quote'\"`; DROP TABLE x;--",
		"percent%_under_score",
		"back\\slash/slash",
	}
	for _, u := range users {
		e := pending(u, storage.Authenticator, strings.Repeat("i", 32))
		e.Secret = bytes.Repeat([]byte{0xff, 0x00, 0x7f}, storage.MaxSecretLen/3)
		e.KeyID = strings.Repeat("k", 32)
		must(t, s.BeginEnrollment(ctx, e))
		got, err := s.Enrollment(ctx, u, storage.Authenticator)
		must(t, err)
		sameEnrollment(t, got, e)
		must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, e.ID, 1<<40, base))
		must(t, s.AcceptStep(ctx, u, storage.Authenticator, 1<<40+1))
		hash := bytes.Repeat([]byte{0xab}, storage.MaxHashLen)
		purpose := strings.Repeat("p", storage.MaxPurposeLen)
		must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: purpose, Hash: hash, ExpiresAt: base.Add(time.Minute)}))
		must(t, s.ConsumeCode(ctx, u, purpose, hash, base))
		_, err = s.RecordFailure(ctx, u, storage.Email)
		must(t, err)
		wait, err := s.ReserveSend(ctx, "email:"+u, base, storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 5})
		must(t, err)
		if wait != 0 {
			t.Fatalf("ReserveSend for %q waits %v", u, wait)
		}
	}
	// Near-identical names are distinct users.
	for _, u := range []string{"ユーザー@例え.j", strings.Repeat("u", storage.MaxUserLen-1), "Emoji-😀-user"} {
		if _, err := s.Enrollment(ctx, u, storage.Authenticator); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Enrollment(%q) = %v, want ErrNotFound", u, err)
		}
	}
}

func testIsolation(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	must(t, s.BeginEnrollment(ctx, pending("a", storage.Authenticator, "a1")))
	must(t, s.BeginEnrollment(ctx, pending("b", storage.Authenticator, "b1")))
	must(t, s.ConfirmEnrollment(ctx, "a", storage.Authenticator, "a1", 5, base))
	got, err := s.Enrollment(ctx, "b", storage.Authenticator)
	must(t, err)
	if got.Verified {
		t.Fatal("confirming a's enrollment verified b's")
	}
	wantErr(t, s.ConfirmEnrollment(ctx, "b", storage.Authenticator, "a1", 5, base), storage.ErrNotFound)
	_, err = s.RecordFailure(ctx, "a", storage.Authenticator)
	must(t, err)
	a, err := s.Attempts(ctx, "b", storage.Authenticator)
	must(t, err)
	if a.Failures != 0 {
		t.Fatal("a's failure counted for b")
	}
}

func testCancelled(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	const u = "cancelled"
	expectAllFail(t, ctx, s, u, "with a cancelled context")
	// Nothing was written.
	bg := context.Background()
	if _, err := s.Enrollment(bg, u, storage.Authenticator); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a cancelled BeginEnrollment left a record: %v", err)
	}
	if a, err := s.Attempts(bg, u, storage.Authenticator); err != nil || a.Failures != 0 {
		t.Fatalf("a cancelled RecordFailure counted: %+v %v", a, err)
	}
}

// Unavailable checks a store whose connection the caller has closed (or
// whose server is gone): every method must return an error, never panic
// and never report success.
func Unavailable(t *testing.T, s storage.Store) {
	t.Helper()
	expectAllFail(t, context.Background(), s, "unavailable", "on a closed connection")
}

func expectAllFail(t *testing.T, ctx context.Context, s storage.Store, u, how string) {
	t.Helper()
	calls := map[string]func() error{
		"Enrollments":       func() error { _, err := s.Enrollments(ctx, u); return err },
		"Enrollment":        func() error { _, err := s.Enrollment(ctx, u, storage.Authenticator); return err },
		"BeginEnrollment":   func() error { return s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "x")) },
		"ConfirmEnrollment": func() error { return s.ConfirmEnrollment(ctx, u, storage.Authenticator, "x", 1, base) },
		"AcceptStep":        func() error { return s.AcceptStep(ctx, u, storage.Authenticator, 1) },
		"DeleteEnrollment":  func() error { _, err := s.DeleteEnrollment(ctx, u, storage.Authenticator); return err },
		"PutCode": func() error {
			return s.PutCode(ctx, storage.Code{User: u, Purpose: "p", Hash: []byte{1}, ExpiresAt: base})
		},
		"ConsumeCode":   func() error { return s.ConsumeCode(ctx, u, "p", []byte{1}, base) },
		"DeleteCode":    func() error { return s.DeleteCode(ctx, u, "p") },
		"Attempts":      func() error { _, err := s.Attempts(ctx, u, storage.Authenticator); return err },
		"RecordFailure": func() error { _, err := s.RecordFailure(ctx, u, storage.Authenticator); return err },
		"LockUntil":     func() error { return s.LockUntil(ctx, u, storage.Authenticator, base) },
		"ResetAttempts": func() error { return s.ResetAttempts(ctx, u, storage.Authenticator) },
		"ReserveSend": func() error {
			_, err := s.ReserveSend(ctx, u, base, storage.SendLimit{Window: time.Hour, Max: 1})
			return err
		},
	}
	if c, ok := s.(storage.Cleaner); ok {
		calls["DeleteExpired"] = func() error { _, err := c.DeleteExpired(ctx, base); return err }
	}
	for name, call := range calls {
		err := call()
		if err == nil {
			t.Errorf("%s %s returned nil", name, how)
		}
		for _, sentinel := range []error{storage.ErrNotFound, storage.ErrAlreadyVerified, storage.ErrStepReused,
			storage.ErrExpired, storage.ErrCodeMismatch} {
			if errors.Is(err, sentinel) {
				t.Errorf("%s %s returned %v, an answer about data it cannot have read", name, how, err)
			}
		}
	}
}

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
	t.Run("AcceptStepOnce", func(t *testing.T) {
		// S3: 50 submissions of one valid code give exactly one success.
		s := newStore(t)
		must(t, s.BeginEnrollment(ctx, pending("u", storage.Authenticator, "id")))
		must(t, s.ConfirmEnrollment(ctx, "u", storage.Authenticator, "id", 100, base))
		ok, errs := race(Workers, func(int) error { return s.AcceptStep(ctx, "u", storage.Authenticator, 101) })
		expectOne(t, "AcceptStep", ok, errs, storage.ErrStepReused)
	})
	t.Run("ConfirmOnce", func(t *testing.T) {
		s := newStore(t)
		must(t, s.BeginEnrollment(ctx, pending("u", storage.Authenticator, "id")))
		ok, errs := race(Workers, func(int) error {
			return s.ConfirmEnrollment(ctx, "u", storage.Authenticator, "id", 7, base)
		})
		expectOne(t, "ConfirmEnrollment", ok, errs, storage.ErrAlreadyVerified)
	})
	t.Run("ConsumeCodeOnce", func(t *testing.T) {
		s := newStore(t)
		hash := []byte("0123456789abcdef0123456789abcdef")
		must(t, s.PutCode(ctx, storage.Code{User: "u", Purpose: "p", Hash: hash, ExpiresAt: base.Add(time.Minute)}))
		ok, errs := race(Workers, func(int) error { return s.ConsumeCode(ctx, "u", "p", hash, base) })
		expectOne(t, "ConsumeCode", ok, errs, storage.ErrNotFound)
	})
	t.Run("BeginNeverReplacesVerified", func(t *testing.T) {
		s := newStore(t)
		must(t, s.BeginEnrollment(ctx, pending("u", storage.Authenticator, "p0")))
		ok, _ := race(Workers, func(i int) error {
			if i == Workers/2 {
				return s.ConfirmEnrollment(ctx, "u", storage.Authenticator, "p0", 1, base)
			}
			return s.BeginEnrollment(ctx, pending("u", storage.Authenticator, fmt.Sprintf("p%d", i+1)))
		})
		got, err := s.Enrollment(ctx, "u", storage.Authenticator)
		must(t, err)
		if got.Verified && got.ID != "p0" {
			t.Fatalf("a verified enrollment was replaced: %+v", got)
		}
		if ok == 0 {
			t.Fatal("no call succeeded")
		}
	})
	t.Run("RecordFailureLosesNothing", func(t *testing.T) {
		// S8: failures under contention are all counted.
		s := newStore(t)
		const per = 4
		ok, errs := race(Workers, func(int) error {
			for range per {
				if _, err := s.RecordFailure(ctx, "u", storage.Authenticator); err != nil {
					return err
				}
			}
			return nil
		})
		if ok != Workers {
			t.Fatalf("RecordFailure errors: %v", errs)
		}
		a, err := s.Attempts(ctx, "u", storage.Authenticator)
		must(t, err)
		if a.Failures != Workers*per {
			t.Fatalf("failures = %d, want %d", a.Failures, Workers*per)
		}
	})
	t.Run("ReserveSendCapped", func(t *testing.T) {
		// S9: concurrent sends never exceed the cap.
		s := newStore(t)
		limit := storage.SendLimit{Window: time.Hour, Max: 5}
		var granted atomic.Int64
		_, errs := race(Workers, func(int) error {
			wait, err := s.ReserveSend(ctx, "u", base, limit)
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
}

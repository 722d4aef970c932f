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
//
// The suite is split by concern: enrollment.go (enrollments and steps),
// codes.go (one-time codes and send throttling), attempts.go (lockout),
// recovery.go, forget.go (ForgetUser), credentials.go (WebAuthn
// credentials), cleaner.go, limits.go (sizes, odd names, isolation),
// failing.go (cancelled contexts and closed connections), concurrent.go,
// disrupt.go (interrupted and killed connections) and bench.go.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// NewStore returns an empty store for one test. It may register cleanup
// with t.Cleanup. The suite may call it from parallel tests.
type NewStore func(t testing.TB) storage.Store

// base is the suite's "now": the wall clock at start-up, at millisecond
// precision, which every backend keeps exactly. It is near the real time so
// that backends which also expire records by the wall clock (Redis TTLs)
// agree with the times the suite passes.
var base = time.Now().UTC().Truncate(time.Millisecond)

// suiteCase is one top-level case of Run.
type suiteCase struct {
	name string
	run  func(*testing.T, NewStore)
	// serial cases measure contention or cut-offs, and run alone.
	serial bool
}

// cases lists the suite. Every case takes a fresh store and uses user
// names, keys and purposes no other case uses, so a case never depends on
// another and, except the serial ones, runs in parallel with the others.
var cases = []suiteCase{
	{name: "Enrollment", run: testEnrollment},
	{name: "ConfirmEnrollment", run: testConfirm},
	{name: "AcceptStep", run: testAcceptStep},
	{name: "Codes", run: testCodes},
	{name: "ReserveAttempt", run: testReserveAttempt},
	{name: "ReserveAttemptSaturates", run: testSaturation},
	{name: "ResetAttempts", run: testResetAttempts},
	{name: "AttemptsPerFactor", run: testAttemptsPerFactor},
	{name: "AcceptStepClearsFailures", run: testAcceptStepClears},
	{name: "ReserveFactor", run: testReserveFactor},
	{name: "Sync", run: testSync},
	{name: "ReserveSend", run: testReserveSend},
	{name: "Limits", run: testLimits},
	{name: "Isolation", run: testIsolation},
	{name: "Cancelled", run: testCancelled},
	{name: "Concurrent", run: testConcurrent, serial: true},
	{name: "Cleaner", run: testCleaner},
	{name: "Interrupted", run: testInterrupted, serial: true},
	{name: "RecoveryCodes", run: testRecovery},
	{name: "Reseal", run: testReseal},
	{name: "ReleaseSend", run: testReleaseSend},
	{name: "ForgetUser", run: testForgetUser},
	{name: "Credentials", run: testCredentials},
}

// Run runs the whole suite against stores made by newStore. The cases
// whose point is contention or cut-off timing (Concurrent, Interrupted)
// run one at a time while Run runs; the others call t.Parallel, so they
// run together once the test that called Run returns (Go's usual rule for
// parallel subtests), each on a store of its own.
func Run(t *testing.T, newStore NewStore) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.serial {
				t.Parallel()
			}
			c.run(t, newStore)
		})
	}
}

func pending(user string, f storage.Factor, id string) storage.Enrollment {
	return storage.Enrollment{User: user, Factor: f, ID: id, Secret: []byte("sealed-" + id), KeyID: "k1",
		CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
}

// verify returns e as ConfirmEnrollment leaves it when it confirms e with
// step at now.
func verify(e storage.Enrollment, step int64, now time.Time) storage.Enrollment {
	e.Verified, e.VerifiedAt, e.ExpiresAt, e.LastStep = true, now, time.Time{}, step
	return e
}

// enroll stores a verified enrollment of (user, f) whose last step is
// step, and returns it.
func enroll(t *testing.T, s storage.Store, user string, f storage.Factor, step int64) storage.Enrollment {
	t.Helper()
	ctx := context.Background()
	e := pending(user, f, "id-"+user)
	must(t, s.BeginEnrollment(ctx, e))
	must(t, s.ConfirmEnrollment(ctx, user, f, e.ID, step, base))
	return verify(e, step, base)
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

// sameTime compares instants at the microsecond, the finest precision a
// backend must keep (the suite's own times are whole milliseconds).
func sameTime(got, want time.Time) bool {
	return got.Truncate(time.Microsecond).Equal(want.Truncate(time.Microsecond))
}

func sameEnrollment(t *testing.T, got, want storage.Enrollment) {
	t.Helper()
	if got.User != want.User || got.Factor != want.Factor || got.ID != want.ID || got.Verified != want.Verified ||
		!bytes.Equal(got.Secret, want.Secret) || got.KeyID != want.KeyID || got.LastStep != want.LastStep ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.VerifiedAt, want.VerifiedAt) ||
		!sameTime(got.ExpiresAt, want.ExpiresAt) {
		t.Fatalf("enrollment =\n  %+v\nwant\n  %+v", got, want)
	}
}

func sameAttempts(t *testing.T, what string, got, want storage.Attempts) {
	t.Helper()
	if got.Failures != want.Failures || !sameTime(got.LockedUntil, want.LockedUntil) || !sameTime(got.LastAt, want.LastAt) {
		t.Fatalf("%s: attempts =\n  %+v\nwant\n  %+v", what, got, want)
	}
}

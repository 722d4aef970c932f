package storage_test

import (
	"math"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// S27: lock durations saturate, whatever the count and the cap.
func TestLockForSaturates(t *testing.T) {
	t.Parallel()
	for _, p := range []storage.LockPolicy{
		{MaxFailures: 5, Base: time.Minute, Max: time.Hour},
		{MaxFailures: 1, Base: 3, Max: math.MaxInt64},
		{MaxFailures: 5, Base: time.Minute, Max: time.Second}, // Max below Base counts as Base
		{MaxFailures: 5, Base: time.Minute},                   // no Max: Base
	} {
		limit := max(p.Base, p.Max)
		prev := time.Duration(0)
		for _, n := range []int{p.MaxFailures, p.MaxFailures + 1, 30, 31, 32, 33, 62, 63, 64, 65, 100, 1 << 40, math.MaxInt} {
			d := p.LockFor(n)
			if d < p.Base || d > limit || d < prev {
				t.Fatalf("%+v: LockFor(%d) = %d after %d", p, n, d, prev)
			}
			prev = d
		}
		if p.LockFor(p.MaxFailures-1) != 0 {
			t.Fatalf("%+v: a lock below MaxFailures", p)
		}
	}
}

// NextAttempt refuses while locked and locks at MaxFailures.
func TestNextAttempt(t *testing.T) {
	t.Parallel()
	p := storage.LockPolicy{MaxFailures: 2, Base: time.Minute, Max: time.Hour}
	now := time.Unix(1e9, 0)
	a, ok := storage.NextAttempt(storage.Attempts{}, now, p)
	if !ok || a.Failures != 1 || !a.LockedUntil.IsZero() || !a.LastAt.Equal(now) {
		t.Fatalf("first: %+v %v", a, ok)
	}
	a, ok = storage.NextAttempt(a, now, p)
	if !ok || a.Failures != 2 || !a.LockedUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("second: %+v %v", a, ok)
	}
	if b, ok := storage.NextAttempt(a, now.Add(59*time.Second), p); ok || b != a {
		t.Fatalf("while locked: %+v %v", b, ok)
	}
	if b, ok := storage.NextAttempt(a, now.Add(time.Minute), p); !ok || !b.LockedUntil.Equal(now.Add(3*time.Minute)) {
		t.Fatalf("after the lock: %+v %v", b, ok)
	}
}

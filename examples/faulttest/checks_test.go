package faulttest

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// mutant is a store with a planted bug, to show that the checks of
// TestFaults see each kind of failure they look for: a test that cannot
// fail checks nothing.
type mutant struct {
	storage.Store
	bug    string
	n      atomic.Int64
	broken atomic.Bool // "stuck": set by the fault
}

func (m *mutant) AcceptStep(ctx context.Context, user string, f storage.Factor, step int64) error {
	switch m.bug {
	case "double": // every fifth replay is accepted
		err := m.Store.AcceptStep(ctx, user, f, step)
		if errors.Is(err, storage.ErrStepReused) && m.n.Add(1)%5 == 0 {
			return nil
		}
		return err
	case "refuse": // ten users' codes are all "reused"
		if strings.HasPrefix(user, "u00000") {
			return storage.ErrStepReused
		}
	}
	return m.Store.AcceptStep(ctx, user, f, step)
}

func (m *mutant) ReserveAttempt(ctx context.Context, user string, f storage.Factor, now time.Time, p storage.LockPolicy) (storage.Attempts, error) {
	switch {
	case m.bug == "lost" && m.n.Add(1)%7 == 0: // reported, not kept
		return storage.Attempts{Failures: 1, LastAt: now}, nil
	case m.bug == "extra" && m.n.Add(1)%7 == 0: // counted twice
		if _, err := m.Store.ReserveAttempt(ctx, user, f, now, p); err != nil {
			return storage.Attempts{}, err
		}
	case m.bug == "stuck" && m.broken.Load(): // never recovers
		return storage.Attempts{}, errors.New("mutant: stuck")
	}
	return m.Store.ReserveAttempt(ctx, user, f, now, p)
}

func (m *mutant) Enrollment(ctx context.Context, user string, f storage.Factor) (storage.Enrollment, error) {
	e, err := m.Store.Enrollment(ctx, user, f)
	if m.bug == "lose-step" && e.LastStep > 0 { // reads an older step
		e.LastStep--
	}
	return e, err
}

// TestChecks runs the load of TestFaults on a store in memory with a
// planted bug, and checks that the analysis reports it (and nothing on
// the store without one).
func TestChecks(t *testing.T) {
	if os.Getenv("MFAKIT_FAULTS") != "1" {
		t.Skip("MFAKIT_FAULTS is not 1: skipping the checks of the fault test (bash .ci/faults runs them)")
	}
	o := readOptions(t)
	o.duration, o.hold, o.recovery = time.Second, time.Second, 2*time.Second
	o.nOK, o.nSentinel = 150, 20
	cases := []struct{ bug, want string }{
		{"", ""},
		{"double", "code accepted twice"},
		{"refuse", "false failure"},
		{"lost", "failure count lost"},
		{"extra", "failure count too high"},
		{"lose-step", "accepted step lost"},
		{"stuck", "no recovery"},
		{"fake-down", "answer while down"},
	}
	for _, c := range cases {
		name := c.bug
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			m := &mutant{Store: memstore.New(), bug: c.bug}
			open := func(context.Context, *clock) (storage.Store, func(), error) { return m, func() {}, nil }
			fault := func(clk *clock, tl *timeline) error {
				tl.fault = clk.since()
				switch c.bug {
				case "stuck":
					m.broken.Store(true)
				case "fake-down": // "down", but the store answers
					tl.down = clk.since()
					time.Sleep(o.hold)
					tl.startAt = clk.since()
				}
				tl.up = clk.since()
				return nil
			}
			rp := runCase(t, o, "bug "+name, open, fault)
			kinds := rp.violationKinds()
			switch {
			case c.want == "" && len(kinds) > 0:
				rp.fail(t)
			case c.want != "" && !slices.Contains(kinds, c.want):
				t.Errorf("the planted bug %q was not reported as %q (reported: %v)", c.bug, c.want, kinds)
			default:
				t.Logf("reported: %v", kinds)
			}
		})
	}
}

package faulttest

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// timeline of a fault, as offsets of the case's clock (clock.since).
type timeline struct {
	fault   time.Duration // the stop was issued, or the first kill
	down    time.Duration // the process was gone (-1: never down)
	startAt time.Duration // the start was issued (-1: never down)
	up      time.Duration // the server answered again, or the last kill ended
	killed  int           // connections killed
}

// stored is what the store holds for each user, read through the Store
// API: the failure count before the load (after enrollment) and after it,
// and LastStep after it.
type stored struct {
	failures0 []int
	failures  []int
	lastStep  []int64
}

// counts of answers.
type counts struct {
	n, ok, invalid, reused, s5xx, none, other int
}

func (c *counts) add(r *rec) {
	c.n++
	switch {
	case r.status == 200:
		c.ok++
	case r.status == 0:
		c.none++
	case r.status >= 500:
		c.s5xx++
	case r.status == 400 && r.problem == pInvalid:
		c.invalid++
	case r.status == 400 && r.problem == pReused:
		c.reused++
	default:
		c.other++
	}
}

func (c counts) String() string {
	s := fmt.Sprintf("%d requests: %d×200, %d×400 (%d invalid_code, %d code_reused), %d×5xx",
		c.n, c.ok, c.invalid+c.reused, c.invalid, c.reused, c.s5xx)
	if c.none > 0 {
		s += fmt.Sprintf(", %d unanswered", c.none)
	}
	if c.other > 0 {
		s += fmt.Sprintf(", %d other", c.other)
	}
	return s
}

// report is the outcome of one case.
type report struct {
	all, before                counts
	kinds                      [4]counts
	downFor, stopFor, startFor time.Duration
	inDown, heldOver           counts // sent while down: answered while down, or after the start
	downMaxLatency             time.Duration
	firstOK, lastErr           time.Duration // after tl.up; lastErr -1 when none
	okAfter                    int           // 200s sent after the last 5xx
	failStored, fail400        int           // fail users: failures stored, 400s answered
	failUpper                  int
	countChecked               int // users whose count was checked
	replaysInWindow            int // sentinel and sweep replays made while the code was valid
	accepted                   int // distinct (user, step) accepted
	violations                 map[string][]string
	tl                         timeline
}

func (rp *report) violate(kind, format string, args ...any) {
	if rp.violations == nil {
		rp.violations = map[string][]string{}
	}
	rp.violations[kind] = append(rp.violations[kind], fmt.Sprintf(format, args...))
}

// analysis works on the records of one case.
type analysis struct {
	pop  *population
	clk  *clock
	tl   timeline
	st   stored
	recs []rec
	// deadline is how long after tl.up the kit may answer 5xx.
	deadline time.Duration
}

// steps returns the steps a request could have matched: those whose code
// is the code sent, within the skew (1) of a step the kit's clock was at
// between the send and the answer.
func (a *analysis) steps(r *rec) []int64 {
	var out []int64
	lo, hi := a.clk.stepAt(r.send)-1, a.clk.stepAt(r.recv)+1
	for s := lo; s <= hi; s++ {
		if a.pop.code(int(r.user), s) == r.code {
			out = append(out, s)
		}
	}
	return out
}

// inWindow reports whether the code of step was valid for the whole of r.
func (a *analysis) inWindow(r *rec, step int64) bool {
	return a.clk.stepAt(r.send) >= step-1 && a.clk.stepAt(r.recv) <= step+1
}

const inf = time.Duration(math.MaxInt64)

// fmtUser names user u with its kind.
func (a *analysis) fmtUser(u int) string {
	return fmt.Sprintf("%s user %d", [...]string{"ok", "sentinel", "fail"}[a.pop.kindOf(u)], u)
}

func (a *analysis) fmtRec(r *rec) string {
	step := ""
	if r.step >= 0 {
		step = fmt.Sprintf(" code of step %d", r.step)
	}
	return fmt.Sprintf("[%s%s sent %.3fs answered %.3fs: %d %s]", [...]string{"ok", "sentinel", "fail", "sweep"}[r.kind], step,
		r.send.Seconds(), r.recv.Seconds(), r.status, [...]string{"", "invalid_code", "code_reused", "internal_error", "other"}[r.problem])
}

func (a *analysis) run() *report {
	rp := &report{lastErr: -1, firstOK: -1}
	byUser := make([][]*rec, len(a.pop.secrets))
	for i := range a.recs {
		r := &a.recs[i]
		byUser[r.user] = append(byUser[r.user], r)
		rp.all.add(r)
		rp.kinds[r.kind].add(r)
		if r.recv < a.tl.fault {
			rp.before.add(r)
		}
		switch {
		case r.status == 0:
			rp.violate("no answer", "the kit did not answer %s", a.fmtRec(r))
		case r.status == 200 || r.status >= 500:
		case r.status == 400 && (r.problem == pInvalid || r.problem == pReused):
		default:
			rp.violate("unexpected answer", "%s: %s", a.fmtUser(int(r.user)), a.fmtRec(r))
		}
		// (c) While the server was down, every answer is a 5xx.
		if a.tl.down >= 0 && r.send >= a.tl.down && r.send <= a.tl.startAt && r.recv > a.tl.startAt {
			rp.heldOver.add(r)
		}
		if a.tl.down >= 0 && r.send >= a.tl.down && r.recv <= a.tl.startAt && r.kind != kSweep {
			rp.inDown.add(r)
			rp.downMaxLatency = max(rp.downMaxLatency, r.recv-r.send)
			if r.status < 500 {
				rp.violate("answer while down", "%s got %s while the server was down (%.3fs to %.3fs)",
					a.fmtUser(int(r.user)), a.fmtRec(r), a.tl.down.Seconds(), a.tl.startAt.Seconds())
			}
		}
		// (d) Recovery, judged by the requests sent after the server was back.
		if r.send >= a.tl.up {
			if r.status == 200 && (rp.firstOK < 0 || r.recv-a.tl.up < rp.firstOK) {
				rp.firstOK = r.recv - a.tl.up
			}
			if r.is5xx() && r.recv-a.tl.up > rp.lastErr {
				rp.lastErr = r.recv - a.tl.up
			}
		}
		if r.recv < a.tl.fault && r.is5xx() {
			rp.violate("5xx before the fault", "%s got %s before the fault", a.fmtUser(int(r.user)), a.fmtRec(r))
		}
	}
	if a.tl.down >= 0 {
		rp.downFor = a.tl.up - a.tl.down
		rp.stopFor = a.tl.down - a.tl.fault
		rp.startFor = a.tl.up - a.tl.startAt
	}
	for i := range a.recs {
		r := &a.recs[i]
		if r.status == 200 && r.send >= a.tl.up && r.send > a.tl.up+rp.lastErr {
			rp.okAfter++
		}
	}
	switch {
	case rp.lastErr > a.deadline:
		rp.violate("no recovery", "requests sent after the server was back still got 5xx answers %.3fs after it (allowed: %s)", rp.lastErr.Seconds(), a.deadline)
	case rp.okAfter == 0:
		rp.violate("no recovery", "no request sent after the last 5xx (%.3fs after the server was back) got a 200", rp.lastErr.Seconds())
	}
	for u, rs := range byUser {
		a.user(rp, u, rs)
	}
	return rp
}

// acc is a request that may have had its code accepted.
type acc struct {
	r    *rec
	step int64 // the newest step it may have been accepted for
}

func (a *analysis) user(rp *report, u int, rs []*rec) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].send < rs[j].send })
	kind := a.pop.kindOf(u)

	// Requests that may have been accepted (and cleared the count): a 200,
	// or a 5xx / no answer to a code that was valid at the time.
	var accs []acc
	var oks []acc // the 200s, with the step accepted
	for _, r := range rs {
		if r.kind == kSweep || !(r.status == 200 || r.is5xx()) {
			continue
		}
		steps := a.steps(r)
		if len(steps) == 0 {
			if r.status == 200 {
				rp.violate("false success", "%s: %s accepted a code that matched no step of the window", a.fmtUser(u), a.fmtRec(r))
			}
			continue
		}
		step := slices.Max(steps) // the kit takes the newest step that matches
		accs = append(accs, acc{r, step})
		if r.status == 200 {
			oks = append(oks, acc{r, step})
		}
	}
	// Sweeps are checked for success too (they must all be refused).
	for _, r := range rs {
		if r.kind == kSweep && r.status == 200 {
			rp.violate("code accepted twice", "%s: the replay %s of its newest accepted code was accepted", a.fmtUser(u), a.fmtRec(r))
		}
		if (r.kind == kSweep || r.kind == kSentinel && r.status == 400) && a.inWindow(r, r.step) {
			rp.replaysInWindow++
		}
	}

	// (a) No code accepted twice, and no older code after a newer one.
	seen := map[int64]*rec{}
	for _, o := range oks {
		if prev := seen[o.step]; prev != nil {
			rp.violate("code accepted twice", "%s: step %d accepted twice: %s and %s", a.fmtUser(u), o.step, a.fmtRec(prev), a.fmtRec(o.r))
		}
		seen[o.step] = o.r
	}
	rp.accepted += len(seen)
	for _, x := range oks {
		for _, y := range oks {
			if y.step < x.step && y.r.send > x.r.recv {
				rp.violate("code accepted twice", "%s: step %d accepted %s after step %d was %s", a.fmtUser(u), y.step, a.fmtRec(y.r), x.step, a.fmtRec(x.r))
			}
		}
	}
	if kind == kFail && len(oks) > 0 {
		rp.violate("false success", "%s: a wrong code was accepted: %s", a.fmtUser(u), a.fmtRec(oks[0].r))
	}

	// Accepted steps survive: LastStep is at least every step answered 200
	// (before the sweep), and at most the newest step sent.
	maxOK, maxAcc := a.pop.enrollStep[u], a.pop.enrollStep[u]
	for _, o := range oks {
		maxOK = max(maxOK, o.step)
	}
	for _, x := range accs {
		maxAcc = max(maxAcc, x.step)
	}
	if l := a.st.lastStep[u]; l < maxOK {
		rp.violate("accepted step lost", "%s: the store's LastStep is %d, but step %d was answered 200", a.fmtUser(u), l, maxOK)
	} else if l > maxAcc {
		rp.violate("phantom step", "%s: the store's LastStep is %d, above every step sent (%d)", a.fmtUser(u), l, maxAcc)
	}

	// A correct, unused code is never refused: a 400 to a code valid for
	// the whole request, while no request that may have used its step (or a
	// newer one) had been sent before the answer.
	for _, r := range rs {
		if r.status != 400 || r.step < 0 || r.kind == kSweep || !a.inWindow(r, r.step) {
			continue
		}
		used := false
		for _, x := range accs {
			if x.r != r && x.step >= r.step && x.r.send < r.recv {
				used = true
				break
			}
		}
		if !used {
			rp.violate("false failure", "%s: its unused, valid code was refused: %s", a.fmtUser(u), a.fmtRec(r))
		}
	}

	// (b) The failure count. Every check is counted when reserved, before
	// the code is compared, and an accepted code clears the count. So the
	// stored count is at least the 400s to requests sent after every
	// request that may have cleared it had been answered (a 5xx: 100 ms
	// later, as a killed MySQL connection's statement may end just after
	// the client saw the error; no answer: never), and at most the
	// requests not answered 200 that were answered after the newest 200
	// was sent (whose clear came after them).
	cut := time.Duration(-1)
	for _, x := range accs {
		switch {
		case x.r.status == 200:
			cut = max(cut, x.r.recv)
		case x.r.status == 0:
			cut = inf
		default:
			cut = max(cut, x.r.recv+100*time.Millisecond)
		}
	}
	last200 := time.Duration(-1)
	for _, o := range oks {
		last200 = max(last200, o.r.send)
	}
	lower, upper := 0, 0
	if cut < 0 {
		lower = a.st.failures0[u]
	}
	if last200 < 0 {
		upper = a.st.failures0[u]
	}
	for _, r := range rs {
		if r.kind == kSweep {
			continue
		}
		if r.status == 400 && r.send > cut {
			lower++
		}
		if r.status != 200 && r.recv >= last200 {
			upper++
		}
	}
	f := a.st.failures[u]
	rp.countChecked++
	if kind == kFail {
		rp.failStored += f
		rp.fail400 += lower
		rp.failUpper += upper
	}
	if f < lower {
		rp.violate("failure count lost", "%s: the store counts %d failures, but %d checks were answered 400 since its count was last cleared",
			a.fmtUser(u), f, lower)
	}
	if f > upper {
		rp.violate("failure count too high", "%s: the store counts %d failures, but only %d checks may have been counted", a.fmtUser(u), f, upper)
	}
}

// summary is the one-paragraph report of a case.
func (rp *report) summary(tl timeline) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", rp.all)
	fmt.Fprintf(&b, "    valid codes %s\n    sentinels   %s\n    wrong codes %s\n    replays     %s\n",
		rp.kinds[kOK], rp.kinds[kSentinel], rp.kinds[kFail], rp.kinds[kSweep])
	fmt.Fprintf(&b, "    answered before the fault: %s\n", rp.before)
	if tl.down >= 0 {
		fmt.Fprintf(&b, "    down %.3fs (stopping took %.3fs, starting %.3fs)\n", rp.downFor.Seconds(), rp.stopFor.Seconds(), rp.startFor.Seconds())
		fmt.Fprintf(&b, "    sent and answered while down: %s (slowest %.0f ms)\n", rp.inDown, float64(rp.downMaxLatency)/float64(time.Millisecond))
		if rp.inDown.n == 0 {
			fmt.Fprintf(&b, "      (none: the down-time check saw nothing this time)\n")
		}
		fmt.Fprintf(&b, "    sent while down, answered after the start began: %s\n", rp.heldOver)
	} else {
		fmt.Fprintf(&b, "    killed %d connections over %.3fs\n", tl.killed, (tl.up - tl.fault).Seconds())
	}
	first := "none"
	if rp.firstOK >= 0 {
		first = fmt.Sprintf("%.3fs", rp.firstOK.Seconds())
	}
	last := "none"
	if rp.lastErr >= 0 {
		last = fmt.Sprintf("%.3fs", rp.lastErr.Seconds())
	}
	fmt.Fprintf(&b, "    recovery (after the server was back): first 200 %s, last 5xx %s, then %d×200\n", first, last, rp.okAfter)
	fmt.Fprintf(&b, "    %d codes accepted; %d replays of accepted codes while they were still valid\n", rp.accepted, rp.replaysInWindow)
	fmt.Fprintf(&b, "    fail users: %d failures stored for %d checks answered 400 (at most %d could count); %d users' counts checked",
		rp.failStored, rp.fail400, rp.failUpper, rp.countChecked)
	return b.String()
}

package storage

import "time"

// The rules below are what the atomic steps of every Store compute:
// backends that can run Go inside their atomic section call them, the
// others restate them in their own language, and storagetest checks that
// both give the same answers.

// LockPolicy is the lockout rule a Store applies in ReserveAttempt.
type LockPolicy struct {
	// MaxFailures is how many checks may be reserved before the factor
	// locks (at least 1).
	MaxFailures int
	// Base is the lock that the MaxFailures-th reservation sets; every
	// reservation beyond it doubles the lock. It must be positive: a
	// policy whose Base is not never locks (mfa.Service always sets it).
	Base time.Duration
	// Max caps the lock; a Max below Base counts as Base.
	Max time.Duration
}

// LockFor returns the lock that the n-th consecutive reservation sets: 0
// below MaxFailures, else Base doubled n-MaxFailures times, saturating at
// max(Base, Max) (never overflowing, whatever n and Max are).
func (p LockPolicy) LockFor(n int) time.Duration {
	if n < p.MaxFailures || p.Base <= 0 {
		return 0
	}
	limit := max(p.Base, p.Max)
	d := p.Base
	for i := n - p.MaxFailures; i > 0 && d < limit; i-- {
		if d > limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// NextAttempt applies p to a at now: the rule of ReserveAttempt. While
// locked (now before a.LockedUntil) it returns a unchanged and false.
// Otherwise it returns the state after one more reservation (Failures+1,
// LastAt now, and LockedUntil = now + p.LockFor(Failures+1) once that
// reaches MaxFailures) and true. Backends that can run Go inside their
// atomic section share this rule instead of restating it; the others
// compute the same thing, and storagetest checks that they do.
func NextAttempt(a Attempts, now time.Time, p LockPolicy) (Attempts, bool) {
	if now.Before(a.LockedUntil) {
		return a, false
	}
	a.Failures++
	a.LastAt = now
	if d := p.LockFor(a.Failures); d > 0 {
		a.LockedUntil = now.Add(d)
	}
	return a, true
}

// SendState is what a Store keeps per ReserveSend key.
type SendState struct {
	// WindowStart is when the current window began.
	WindowStart time.Time
	// Last is the time of the last reserved send.
	Last time.Time
	// Count is the number of sends reserved in the current window.
	Count int
}

// NextSend applies limit to st at now. If a send is allowed it returns the
// state after that send and a zero wait; otherwise it returns st unchanged
// and how long until a send would be allowed. Backends that can run Go
// inside their atomic section share this rule instead of restating it.
func NextSend(st SendState, now time.Time, limit SendLimit) (SendState, time.Duration) {
	if !st.Last.IsZero() && now.Sub(st.Last) < limit.MinGap {
		return st, st.Last.Add(limit.MinGap).Sub(now)
	}
	if st.WindowStart.IsZero() || !now.Before(st.WindowStart.Add(limit.Window)) {
		st.WindowStart, st.Count = now, 0
	}
	if limit.Max > 0 && st.Count >= limit.Max {
		return st, st.WindowStart.Add(limit.Window).Sub(now)
	}
	st.Count++
	st.Last = now
	return st, 0
}

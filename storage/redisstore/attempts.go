package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// Attempts implements storage.AttemptStore.
func (s *Store) Attempts(ctx context.Context, user string, factor storage.Factor) (storage.Attempts, error) {
	vals, err := s.rdb.HMGet(ctx, s.attemptsKey(user, factor), "f", "u", "t").Result()
	if err != nil {
		return storage.Attempts{}, wrap("attempts", err)
	}
	return decodeAttempts(vals), nil
}

// decodeAttempts reads Failures, LockedUntil and LastAt from vals[0:3].
func decodeAttempts(vals []any) storage.Attempts {
	return storage.Attempts{Failures: int(num(vals, 0)), LockedUntil: fromMicros(num(vals, 1)), LastAt: fromMicros(num(vals, 2))}
}

// ReserveAttempt implements storage.AttemptStore in one script
// (storage.NextAttempt in Lua, see reserveScript), which also sets the
// failure state to expire storage.AttemptIdle after max(LockedUntil, now)
// (S27).
func (s *Store) ReserveAttempt(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Attempts, error) {
	_, a, err := s.reserve(ctx, user, factor, now, p, "", false)
	return a, err
}

// ReserveFactor implements storage.ReservingReader: one script reserves
// the check and, unless the factor is locked, reads the enrollment.
func (s *Store) ReserveFactor(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Enrollment, storage.Attempts, error) {
	return s.reserve(ctx, user, factor, now, p, "", true)
}

// reserve runs reserveScript under request id rq (a fresh one if empty;
// a resend with the same rq answers like the first call) and returns the
// failure state it answered and, with enrollment, the enrollment it read.
func (s *Store) reserve(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy,
	rq string, enrollment bool) (storage.Enrollment, storage.Attempts, error) {
	op := "reserve attempt"
	if enrollment {
		op = "reserve factor"
	}
	// The state lives AttemptIdle beyond max(LockedUntil, now), judged by
	// now; if now is ahead of the wall clock that turns times into TTLs,
	// by that too, as for the other records.
	idle := storage.AttemptIdle + max(now.Sub(s.now()), 0)
	var a args
	a.b.Grow(2*s.keyLen(user, len(factor)) + s.keyLen(user, max(len(rq), maxRequestID)) + 6*20)
	a.key(s.prefix, user, "a", string(factor))
	if rq == "" {
		a.requestKey(s.prefix, user)
	} else {
		a.key(s.prefix, user, "r", rq)
	}
	if enrollment {
		a.key(s.prefix, user, "e", string(factor))
	}
	a.int(micros(now))
	a.int(int64(now.Nanosecond() % 1000))
	a.int(int64(p.MaxFailures))
	a.int(int64(p.Base))
	a.int(int64(p.Max))
	a.int(int64((idle + time.Millisecond - 1) / time.Millisecond))
	raw, err := s.runRaw(ctx, reserveScript, &a)
	if err != nil {
		return storage.Enrollment{}, storage.Attempts{}, wrap(op, err)
	}
	// The answer is the state, or (see reserveScript) an array of the
	// state and the enrollment's fields.
	whole, fields := raw.s, raw.isArray()
	if fields && raw.array() != 2 {
		raw.fail()
	}
	head, _ := raw.str()
	r := reply{s: head}
	st := r.word()
	at := storage.Attempts{Failures: int(r.num()), LockedUntil: fromMicros(r.num()), LastAt: fromMicros(r.num())}
	var vals [len(enrollmentFields)]string
	if fields && raw.array() == len(vals) {
		for i := range vals {
			vals[i], _ = raw.str()
		}
	} else if fields {
		raw.fail()
	}
	if raw.bad || raw.s != "" || r.bad || r.more() || fields != (enrollment && st == "OK") {
		return storage.Enrollment{}, storage.Attempts{}, wrap(op, fmt.Errorf("unexpected script reply %q", whole))
	}
	if err := statusErr(op, st); err != nil || !enrollment {
		return storage.Enrollment{}, at, err
	}
	e, err := decodeEnrollment(user, factor, vals[:])
	return e, at, err
}

// ResetAttempts implements storage.AttemptStore.
func (s *Store) ResetAttempts(ctx context.Context, user string, factor storage.Factor) error {
	if err := s.rdb.Del(ctx, s.attemptsKey(user, factor)).Err(); err != nil {
		return wrap("reset attempts", err)
	}
	return nil
}

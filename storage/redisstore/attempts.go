package redisstore

import (
	"context"
	"crypto/rand"
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
	a, _, err := s.reserve(ctx, user, factor, now, p, rand.Text(), false)
	return a, err
}

// ReserveFactor implements storage.ReservingReader: one script reserves
// the check and, unless the factor is locked, reads the enrollment.
func (s *Store) ReserveFactor(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Enrollment, storage.Attempts, error) {
	a, vals, err := s.reserve(ctx, user, factor, now, p, rand.Text(), true)
	if err != nil {
		return storage.Enrollment{}, a, err
	}
	e, err := decodeEnrollment(user, factor, vals)
	return e, a, err
}

// reserve runs reserveScript under request id rq (a resend with the same
// rq answers like the first call) and returns the failure state it
// answered and, with enrollment, the values of enrollmentFields.
func (s *Store) reserve(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy,
	rq string, enrollment bool) (storage.Attempts, []any, error) {
	keys := []string{s.attemptsKey(user, factor), s.requestKey(user, rq)}
	op := "reserve attempt"
	if enrollment {
		keys = append(keys, s.enrollmentKey(user, factor))
		op = "reserve factor"
	}
	// The state lives AttemptIdle beyond max(LockedUntil, now), judged by
	// now; if now is ahead of the wall clock that turns times into TTLs,
	// by that too, as for the other records.
	idle := storage.AttemptIdle + max(now.Sub(s.now()), 0)
	vals, err := reserveScript.Run(ctx, s.rdb, keys, micros(now), now.Nanosecond()%1000,
		p.MaxFailures, int64(p.Base), int64(p.Max), int64((idle+time.Millisecond-1)/time.Millisecond)).Slice()
	if err != nil {
		return storage.Attempts{}, nil, wrap(op, err)
	}
	if len(vals) < 4 {
		return storage.Attempts{}, nil, wrap(op, fmt.Errorf("unexpected script reply %v", vals))
	}
	a := decodeAttempts(vals[1:4])
	if err := statusErr(op, vals[0]); err != nil {
		return a, nil, err
	}
	return a, vals[4:], nil
}

// ResetAttempts implements storage.AttemptStore.
func (s *Store) ResetAttempts(ctx context.Context, user string, factor storage.Factor) error {
	if err := s.rdb.Del(ctx, s.attemptsKey(user, factor)).Err(); err != nil {
		return wrap("reset attempts", err)
	}
	return nil
}

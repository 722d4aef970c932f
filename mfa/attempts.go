package mfa

import (
	"context"
	"errors"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// reserve counts one check of (user, f) before its code is compared (S8,
// S22): it returns a *LockedError while the factor is locked, and otherwise
// the state after the reservation, for failed.
func (s *Service) reserve(ctx context.Context, user string, f Factor) (storage.Attempts, error) {
	now := s.cfg.Now()
	a, err := s.store.ReserveAttempt(ctx, user, f, now, s.lock)
	return a, s.reserveErr(ctx, a, now, err)
}

// reserveFactor reserves a check of (user, f) and reads its enrollment, in
// one round trip when the Store can (storage.ReservingReader). A missing
// enrollment is storage.ErrNotFound, with the check still reserved.
func (s *Service) reserveFactor(ctx context.Context, user string, f Factor) (storage.Enrollment, storage.Attempts, error) {
	if r, ok := s.store.(storage.ReservingReader); ok {
		now := s.cfg.Now()
		e, a, err := r.ReserveFactor(ctx, user, f, now, s.lock)
		if errors.Is(err, storage.ErrNotFound) {
			return e, a, err
		}
		return e, a, s.reserveErr(ctx, a, now, err)
	}
	a, err := s.reserve(ctx, user, f)
	if err != nil {
		return storage.Enrollment{}, a, err
	}
	e, err := s.store.Enrollment(ctx, user, f)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		err = s.internal(ctx, "reserve check", err)
	}
	return e, a, err
}

// reserveErr turns the error of a reservation made at now into the
// Service's: a *LockedError for a locked factor, else an internal error.
func (s *Service) reserveErr(ctx context.Context, a storage.Attempts, now time.Time, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrLocked):
		return newLockedError(a.LockedUntil, now)
	}
	return s.internal(ctx, "reserve check", err)
}

// failed reports a reserved check whose code was wrong: the reservation
// already counted it. It returns cause, or a *LockedError when this check
// was the one that locked the factor.
func (s *Service) failed(ctx context.Context, user string, f Factor, a storage.Attempts, cause error) error {
	reason := codeOf(cause)
	s.emit(ctx, EventFailure, user, f, reason)
	if err := s.durable(ctx); err != nil {
		return err
	}
	now := s.cfg.Now()
	if a.Failures < s.cfg.MaxFailures || !now.Before(a.LockedUntil) {
		return cause
	}
	s.emit(ctx, EventLockout, user, f, reason)
	return newLockedError(a.LockedUntil, now)
}

// durable makes the reservations made so far durable before a check that
// did not succeed is answered, where the Store lets them return before
// they are (storage.Syncer); a failed Sync is an internal error, so no
// failure is answered whose count could still be lost.
func (s *Service) durable(ctx context.Context) error {
	if sy, ok := s.store.(storage.Syncer); ok {
		if err := sy.Sync(ctx); err != nil {
			return s.internal(ctx, "sync attempts", err)
		}
	}
	return nil
}

// succeeded ends the count of (user, f) after a right code (S8: a success
// resets it), unless the Store already did (cleared), and emits typ.
func (s *Service) succeeded(ctx context.Context, user string, f Factor, typ EventType, cleared bool) {
	if !cleared {
		if err := s.store.ResetAttempts(ctx, user, f); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "mfa: reset attempts failed", "err", err)
		}
	}
	s.emit(ctx, typ, user, f, "")
}

// failureReasons gives the Event.Reason of a failure by its cause,
// matched with errors.Is in order; any other cause is "invalid_code".
// Each reason is the problem code the HTTP layer answers the cause with
// (httpx's table of problem codes; mfa cannot import httpx, so
// TestFailureReasonsAreProblemCodes checks it).
var failureReasons = []struct {
	cause  error
	reason string
}{
	{ErrCodeReused, "code_reused"},
	{ErrCodeExpired, "code_expired"},
	{ErrNotEnrolled, "not_enrolled"},
	{ErrInvalidCode, "invalid_code"},
	{ErrCloneSuspected, "clone_suspected"},
	{ErrChallengeExpired, "challenge_expired"},
	{ErrInvalidCredential, "invalid_credential"},
}

// codeOf returns the Event.Reason of a failure caused by err.
func codeOf(err error) string {
	for _, r := range failureReasons {
		if errors.Is(err, r.cause) {
			return r.reason
		}
	}
	return "invalid_code"
}

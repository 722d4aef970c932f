package mfa

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/storage"
)

// purposeEnrollEmail keys the code that confirms an email enrollment.
const purposeEnrollEmail = "enroll-email"

// BeginEmail starts (or restarts) the user's email enrollment: it sends a
// fresh 6-digit code to address, which replaces any earlier code (S10).
// Sends are throttled per user (S9): a refused send returns a
// *RateLimitedError. It fails with ErrAlreadyEnrolled if email is verified.
func (s *Service) BeginEmail(ctx context.Context, user, address string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if !s.enabled(Email) {
		return ErrFactorDisabled
	}
	e, err := s.store.Enrollment(ctx, user, Email)
	switch {
	case err == nil && e.Verified:
		return ErrAlreadyEnrolled
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return s.internal(ctx, "begin email", err)
	}
	now := s.cfg.Now()
	expires := now.Add(s.cfg.EmailCodeTTL)
	if err := s.sendCode(ctx, user, address, purposeEnrollEmail, expires); err != nil {
		return err
	}
	err = s.store.BeginEnrollment(ctx, storage.Enrollment{User: user, Factor: Email, ID: newID(),
		CreatedAt: now, ExpiresAt: expires})
	if errors.Is(err, storage.ErrAlreadyVerified) {
		return ErrAlreadyEnrolled
	}
	if err != nil {
		return s.internal(ctx, "begin email", err)
	}
	s.emit(ctx, EventEnrollStarted, user, Email, "")
	return nil
}

// VerifyEmail confirms the user's pending email enrollment with the code
// that BeginEmail sent. The code is single use (S10); the check is counted
// before the code is compared (S8, S22).
func (s *Service) VerifyEmail(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	e, err := s.store.Enrollment(ctx, user, Email)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return ErrNotEnrolled
	case err != nil:
		return s.internal(ctx, "verify email", err)
	case e.Verified:
		return ErrAlreadyEnrolled
	}
	if s.cfg.DisallowEmailOnly {
		a, err := s.store.Enrollment(ctx, user, Authenticator)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return s.internal(ctx, "verify email", err)
		}
		if !a.Verified {
			return ErrEmailOnly
		}
	}
	a, err := s.reserve(ctx, user, Email)
	if err != nil {
		return err
	}
	if err := s.consumeEmailCode(ctx, user, purposeEnrollEmail, code, a); err != nil {
		return err
	}
	switch err := s.store.ConfirmEnrollment(ctx, user, Email, e.ID, 0, s.cfg.Now()); {
	case errors.Is(err, storage.ErrAlreadyVerified):
		return ErrAlreadyEnrolled
	case errors.Is(err, storage.ErrNotFound):
		return ErrNotEnrolled
	case errors.Is(err, storage.ErrExpired):
		return ErrCodeExpired
	case err != nil:
		return s.internal(ctx, "confirm email", err)
	}
	s.succeeded(ctx, user, Email, EventEnrollVerified, false)
	s.notify(ctx, user, Email, "added")
	return nil
}

// consumeEmailCode uses up the emailed code of purpose, for the check
// reserved as a: a wrong, expired or missing code is a failure.
func (s *Service) consumeEmailCode(ctx context.Context, user, purpose, code string, a storage.Attempts) error {
	switch err := s.consumeCode(ctx, user, purpose, code); {
	case errors.Is(err, storage.ErrExpired):
		return s.failed(ctx, user, Email, a, ErrCodeExpired)
	case errors.Is(err, storage.ErrCodeMismatch), errors.Is(err, storage.ErrNotFound):
		return s.failed(ctx, user, Email, a, ErrInvalidCode)
	case err != nil:
		return s.internal(ctx, "consume email code", err)
	}
	return nil
}

// consumeCode uses up the code of (user, purpose) if code is its code: it
// tries the hash under each key of the keyring, the current one first, so
// a code made before a key rotation still works (S25). Its errors are
// ConsumeCode's.
func (s *Service) consumeCode(ctx context.Context, user, purpose, code string) error {
	var err error
	for i := range s.keys.hashKeys() {
		err = s.store.ConsumeCode(ctx, user, purpose, s.keys.codeHashWith(i, user, purpose, code), s.cfg.Now())
		if !errors.Is(err, storage.ErrCodeMismatch) {
			return err
		}
	}
	return err
}

// sendCode reserves a send (S9), stores a fresh code under purpose
// (replacing the previous one, S10) and mails it to address. An undelivered
// code is removed so it cannot linger.
func (s *Service) sendCode(ctx context.Context, user, address, purpose string, expires time.Time) error {
	if address == "" {
		return ErrNoEmail
	}
	now := s.cfg.Now()
	wait, err := s.store.ReserveSend(ctx, emailSendKey(user), now, s.limits)
	if err != nil {
		return s.internal(ctx, "reserve send", err)
	}
	if wait > 0 {
		return &RateLimitedError{RetryAfter: wait}
	}
	code := newDigits(6)
	err = s.store.PutCode(ctx, storage.Code{User: user, Purpose: purpose,
		Hash: s.keys.codeHash(user, purpose, code), ExpiresAt: expires})
	if err != nil {
		return s.internal(ctx, "store email code", err)
	}
	tpl := mailer.Localized{Default: s.cfg.CodeTemplate, ByLocale: s.cfg.CodeTemplates}.For(requestInfo(ctx).Locale)
	msg, err := tpl.Render(address, mailer.CodeData{Product: s.cfg.Issuer, User: user,
		Code: code, TTL: expires.Sub(now)})
	if err != nil {
		return s.internal(ctx, "render email", err)
	}
	if err := s.mail.Send(ctx, msg); err != nil {
		// Undelivered: drop the code and give the send back, so nothing
		// usable lingers and the user's next request is not held back.
		bg := context.WithoutCancel(ctx)
		_ = s.store.DeleteCode(bg, user, purpose)
		if r, ok := s.store.(storage.SendReleaser); ok {
			_ = r.ReleaseSend(bg, emailSendKey(user), now)
		}
		s.cfg.Logger.ErrorContext(ctx, "mfa: email not delivered", "err", err)
		return fmt.Errorf("%w: %w", ErrMailUnavailable, err)
	}
	s.emit(ctx, EventEmailSent, user, Email, "")
	return nil
}

package mfa

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// AuthenticatorKey is what a user needs to add an account to an
// authenticator app. It is shown once, while the enrollment is pending.
type AuthenticatorKey struct {
	// Secret is the base32 secret (no padding), for manual entry.
	Secret string
	// URI is the otpauth key URI the QR code encodes (S6).
	URI string
	// ExpiresAt is when the pending enrollment lapses.
	ExpiresAt time.Time
}

// BeginAuthenticator starts a pending authenticator enrollment with a fresh
// secret (S4), replacing any earlier pending one. It fails with
// ErrAlreadyEnrolled if the user's authenticator is verified (S7).
func (s *Service) BeginAuthenticator(ctx context.Context, user string) (AuthenticatorKey, error) {
	if err := checkUser(user); err != nil {
		return AuthenticatorKey{}, err
	}
	if !s.enabled(Authenticator) {
		return AuthenticatorKey{}, ErrFactorDisabled
	}
	secret := make([]byte, s.cfg.SecretSize)
	rand.Read(secret)
	uri, err := s.totp.keyURI(s.cfg.Issuer, user, secret)
	if err != nil {
		return AuthenticatorKey{}, fmt.Errorf("mfa: key URI: %w", err)
	}
	now := s.cfg.Now()
	id := newID()
	sealed, keyID := s.keys.seal(secret, secretAD(user, Authenticator, id))
	e := storage.Enrollment{User: user, Factor: Authenticator, ID: id, Secret: sealed, KeyID: keyID,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.PendingTTL)}
	if err := s.store.BeginEnrollment(ctx, e); err != nil {
		if errors.Is(err, storage.ErrAlreadyVerified) {
			return AuthenticatorKey{}, ErrAlreadyEnrolled
		}
		return AuthenticatorKey{}, s.internal(ctx, "begin authenticator", err)
	}
	s.emit(ctx, EventEnrollStarted, user, Authenticator, "")
	return AuthenticatorKey{Secret: b32.EncodeToString(secret), URI: uri, ExpiresAt: e.ExpiresAt}, nil
}

// VerifyAuthenticator confirms the user's pending authenticator enrollment
// with a code from the app. The code's time step counts as used (S3). The
// check is counted before the code is compared (S22).
func (s *Service) VerifyAuthenticator(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	e, err := s.store.Enrollment(ctx, user, Authenticator)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return ErrNotEnrolled
	case err != nil:
		return s.internal(ctx, "verify authenticator", err)
	case e.Verified:
		return ErrAlreadyEnrolled
	case !s.cfg.Now().Before(e.ExpiresAt):
		return ErrEnrollmentExpired
	}
	a, err := s.reserve(ctx, user, Authenticator)
	if err != nil {
		return err
	}
	secret, err := s.openSecret(ctx, e)
	if err != nil {
		return err
	}
	step, ok := s.match(secret, code, s.cfg.Now())
	if !ok {
		return s.failed(ctx, user, Authenticator, a, ErrInvalidCode)
	}
	switch err := s.store.ConfirmEnrollment(ctx, user, Authenticator, e.ID, step, s.cfg.Now()); {
	case errors.Is(err, storage.ErrAlreadyVerified):
		// A concurrent request confirmed it with this very code.
		return s.failed(ctx, user, Authenticator, a, ErrCodeReused)
	case errors.Is(err, storage.ErrNotFound):
		// Reset or replaced by a new QR code meanwhile: nothing was
		// written after the reservation, which must be durable first.
		return cmp.Or(s.durable(ctx), ErrNotEnrolled)
	case errors.Is(err, storage.ErrExpired):
		return cmp.Or(s.durable(ctx), ErrEnrollmentExpired)
	case err != nil:
		return s.internal(ctx, "confirm authenticator", err)
	}
	s.succeeded(ctx, user, Authenticator, EventEnrollVerified, false)
	s.notify(ctx, user, Authenticator, "added")
	return nil
}

// CheckAuthenticator accepts a code of the user's verified authenticator:
// the code must match within the skew window and its time step must be
// newer than any accepted before (S3). Each check is counted before the
// code is compared, so at most MaxFailures are compared before the factor
// locks, however many arrive at once (S8, S22). A user without a verified
// authenticator gets ErrNotEnrolled, after the same work as a wrong code
// (S21, S26).
func (s *Service) CheckAuthenticator(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	e, a, err := s.reserveFactor(ctx, user, Authenticator)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err != nil || !e.Verified {
		// The same work as a real check: open a sealed secret, try the code.
		s.keys.openSecret(s.keys.CurrentID(), s.dummySealed, user, Authenticator, "")
		s.match(s.dummy, code, s.cfg.Now())
		return s.failed(ctx, user, Authenticator, a, ErrNotEnrolled)
	}
	secret, err := s.openSecret(ctx, e)
	if err != nil {
		return err
	}
	step, ok := s.match(secret, code, s.cfg.Now())
	if !ok {
		return s.failed(ctx, user, Authenticator, a, ErrInvalidCode)
	}
	switch err := s.store.AcceptStep(ctx, user, Authenticator, step); {
	case errors.Is(err, storage.ErrStepReused):
		s.emit(ctx, EventReplay, user, Authenticator, "code_reused")
		return s.failed(ctx, user, Authenticator, a, ErrCodeReused)
	case errors.Is(err, storage.ErrNotFound):
		return s.failed(ctx, user, Authenticator, a, ErrNotEnrolled)
	case err != nil:
		return s.internal(ctx, "accept step", err)
	}
	// AcceptStep cleared the failure state with the step.
	s.succeeded(ctx, user, Authenticator, EventVerified, true)
	return nil
}

// openSecret decrypts an enrollment's secret. One sealed under an older
// key (or, with Config.AcceptUnboundSecrets, under the binding of older
// versions) is resealed under the current key and binding when the Store
// can (S5 key rotation); that is best effort and never fails the check.
func (s *Service) openSecret(ctx context.Context, e storage.Enrollment) ([]byte, error) {
	secret, err := s.keys.openSecret(e.KeyID, e.Secret, e.User, e.Factor, e.ID)
	unbound := false
	if err != nil && s.cfg.AcceptUnboundSecrets {
		if secret, err = s.keys.open(e.KeyID, e.Secret, unboundSecretAD(e.User, e.Factor)); err == nil {
			unbound = true
		}
	}
	if err != nil {
		return nil, s.internal(ctx, "open secret", err)
	}
	if r, ok := s.store.(storage.Resealer); ok && (unbound || e.KeyID != s.keys.CurrentID()) {
		sealed, keyID := s.keys.seal(secret, secretAD(e.User, e.Factor, e.ID))
		err := r.ResealSecret(ctx, e.User, e.Factor, e.ID, e.KeyID, sealed, keyID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.cfg.Logger.ErrorContext(ctx, "mfa: could not reseal a secret under the current key", "err", err)
		}
	}
	return secret, nil
}

// secretAD binds a sealed secret to its user, factor and enrollment (S5,
// S30): a sealed secret copied into another row, or into a later
// enrollment of the same user, does not open.
func secretAD(user string, f Factor, id string) []byte {
	return appendSecretAD(nil, user, f, id)
}

// secretADPrefix starts every binding secretAD makes.
const secretADPrefix = "mfakit/secret/v2\x00"

// appendSecretAD appends secretAD(user, f, id) to b.
func appendSecretAD(b []byte, user string, f Factor, id string) []byte {
	b = append(b, secretADPrefix...)
	b = append(b, f...)
	b = append(b, 0)
	b = append(b, user...)
	b = append(b, 0)
	return append(b, id...)
}

// unboundSecretAD is the binding of versions before S30, without the
// enrollment id; opened only with Config.AcceptUnboundSecrets.
func unboundSecretAD(user string, f Factor) []byte {
	return []byte("mfakit/secret/v1\x00" + string(f) + "\x00" + user)
}

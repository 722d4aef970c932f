package mfa

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by Service methods. Test them with errors.Is; the HTTP
// layer maps each to a status and a stable problem code.
var (
	// ErrInvalidCode: the code is wrong, malformed, or (where the caller
	// must not learn more) belongs to no enrollment.
	ErrInvalidCode = errors.New("mfa: invalid code")
	// ErrCodeExpired: the one-time code was right once but has lapsed.
	ErrCodeExpired = errors.New("mfa: code expired")
	// ErrCodeReused: the code's time step was already accepted (S3).
	ErrCodeReused = errors.New("mfa: code already used")
	// ErrNotEnrolled: the user has no enrollment of the factor in the state
	// the operation needs.
	ErrNotEnrolled = errors.New("mfa: factor not enrolled")
	// ErrEnrollmentExpired: the pending enrollment lapsed; start again.
	ErrEnrollmentExpired = errors.New("mfa: pending enrollment expired")
	// ErrAlreadyEnrolled: the factor is already verified; reset it first (S7).
	ErrAlreadyEnrolled = errors.New("mfa: factor already enrolled")
	// ErrFactorDisabled: the host did not enable this factor.
	ErrFactorDisabled = errors.New("mfa: factor not enabled")
	// ErrUnsupportedProof: the proof's factor cannot prove this operation.
	ErrUnsupportedProof = errors.New("mfa: unsupported proof factor")
	// ErrForbidden: the caller lacks the role the operation needs (S14).
	ErrForbidden = errors.New("mfa: forbidden")
	// ErrInvalidUser: the username is empty, too long or not UTF-8.
	ErrInvalidUser = errors.New("mfa: invalid username")
	// ErrNoEmail: the user has no email address to send a code to.
	ErrNoEmail = errors.New("mfa: no email address for user")
	// ErrMailUnavailable: the Mailer could not deliver the code; nothing was
	// kept and the user may ask again at once. It wraps the Mailer's error.
	ErrMailUnavailable = errors.New("mfa: email could not be delivered")
	// ErrEmailOnly: policy refuses email as the user's only factor (S11).
	ErrEmailOnly = errors.New("mfa: email cannot be the only factor")
	// ErrInvalidCredential: a WebAuthn registration or assertion is
	// malformed or did not verify: wrong origin or RP ID, bad signature,
	// not a credential of the user, a challenge not issued for it or used
	// already (S31). The error's text says which; answer it without.
	ErrInvalidCredential = errors.New("mfa: WebAuthn credential not valid")
	// ErrChallengeExpired: the WebAuthn challenge the browser answered has
	// expired (5 minutes, S31); ask for new options.
	ErrChallengeExpired = errors.New("mfa: WebAuthn challenge expired")
	// ErrCredentialExists: the credential ID is registered already, for
	// this user or another (S32).
	ErrCredentialExists = errors.New("mfa: credential already registered")
	// ErrCloneSuspected: the credential's signature counter did not
	// increase, so the authenticator may have been cloned; the assertion
	// is refused and audited (S32).
	ErrCloneSuspected = errors.New("mfa: signature counter did not increase: possible cloned authenticator")
	// ErrCredentialNotFound: the user has no credential with that ID.
	ErrCredentialNotFound = errors.New("mfa: no such credential")
	// ErrCredentialLimit: the user holds MaxCredentials already.
	ErrCredentialLimit = errors.New("mfa: too many credentials")
	// ErrInvalidName: a credential name is over 64 bytes, not UTF-8, or
	// holds control or format characters.
	ErrInvalidName = errors.New("mfa: invalid credential name")
	// ErrInternal is matched by every error a Service method returns
	// because its Store, Mailer or keys failed. The Service has already
	// logged it, with the operation, through Config.Logger; answer it as
	// a server error that does not show its text.
	ErrInternal = errors.New("mfa: internal error")
)

// LockedError reports that a factor is locked after too many failures (S8).
// It matches ErrLocked with errors.Is.
type LockedError struct {
	// Until is when the lockout ends.
	Until time.Time
	// RetryAfter is how long the lockout had left when the error was made,
	// by the Service's clock (Config.Now): Until less that moment. The
	// HTTP layer sends it as Retry-After, so no other clock is read.
	RetryAfter time.Duration
}

func newLockedError(until, now time.Time) *LockedError {
	return &LockedError{Until: until, RetryAfter: max(0, until.Sub(now))}
}

// ErrLocked is matched by every *LockedError.
var ErrLocked = errors.New("mfa: too many failed attempts")

// Error says until when the factor is locked.
func (e *LockedError) Error() string {
	return fmt.Sprintf("mfa: too many failed attempts; locked until %s", e.Until.UTC().Format(time.RFC3339))
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// RateLimitedError reports that an email was refused by the send throttle
// (S9). It matches ErrRateLimited with errors.Is.
type RateLimitedError struct {
	// RetryAfter is how long until a send is allowed.
	RetryAfter time.Duration
}

// ErrRateLimited is matched by every *RateLimitedError.
var ErrRateLimited = errors.New("mfa: too many codes requested")

// Error says how long to wait.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("mfa: too many codes requested; retry after %s", e.RetryAfter.Round(time.Second))
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

package mfa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/storage"
)

// purposeEnrollEmail keys the code that confirms an email enrollment.
const purposeEnrollEmail = "enroll-email"

// Service is the MFA domain: enrollment, verification, reset and status.
// It is safe for concurrent use; all state lives in the Store, so several
// Services (in one process or many) sharing a Store behave as one.
type Service struct {
	store storage.Store
	mail  mailer.Mailer
	keys  *Keyring
	cfg   Config
	totp  TOTP
	dummy []byte
	// dummySealed is opened (and fails: its owner differs) when a user has
	// no enrollment, to match the cost of opening a real secret.
	dummySealed []byte
	limits      storage.SendLimit
	// match is totp.Match; a field so tests can count the checks (S21).
	match func(secret []byte, code string, now time.Time) (int64, bool)
}

// New returns a Service. store keeps state, mail sends codes, and keys seals
// TOTP secrets and keys code hashes; all three are required. cfg may be the
// zero value.
func New(store storage.Store, mail mailer.Mailer, keys *Keyring, cfg Config) (*Service, error) {
	if store == nil || mail == nil || keys == nil {
		return nil, errors.New("mfa: New needs a store, a mailer and a keyring")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{
		store: store, mail: mail, keys: keys, cfg: cfg,
		totp:  TOTP{Algorithm: cfg.Algorithm, Digits: cfg.Digits, Period: cfg.Period, Skew: cfg.Skew},
		dummy: make([]byte, cfg.SecretSize),
		limits: storage.SendLimit{MinGap: cfg.EmailResendInterval, Window: time.Hour,
			Max: cfg.EmailHourlyLimit},
	}
	rand.Read(s.dummy)
	s.dummySealed, _ = keys.seal(s.dummy, secretAD("", Authenticator))
	s.match = s.totp.Match
	return s, nil
}

// Config returns the configuration in force, defaults filled in.
func (s *Service) Config() Config { return s.cfg }

// TOTP returns the code parameters in force.
func (s *Service) TOTP() TOTP { return s.totp }

func checkUser(user string) error {
	if user == "" || len(user) > storage.MaxUserLen || !utf8.ValidString(user) {
		return ErrInvalidUser
	}
	return nil
}

func (s *Service) enabled(f Factor) bool { return slices.Contains(s.cfg.Factors, f) }

func (s *Service) emit(ctx context.Context, typ EventType, user string, f Factor, reason string) {
	info := requestInfo(ctx)
	actor := info.Actor
	if actor == "" {
		actor = user
	}
	s.cfg.Events.HandleEvent(ctx, Event{Type: typ, User: user, Factor: f, Actor: actor,
		Time: s.cfg.Now(), ClientIP: info.ClientIP, Reason: reason})
}

// internal logs err and returns it wrapped, so the HTTP layer answers 500
// without showing it.
func (s *Service) internal(ctx context.Context, op string, err error) error {
	s.cfg.Logger.ErrorContext(ctx, "mfa: store or mailer failed", "op", op, "err", err)
	return &internalError{fmt.Errorf("mfa: %s: %w", op, err)}
}

// FactorStatus is one factor's entry in a Status.
type FactorStatus struct {
	// Verified is false while the enrollment is pending.
	Verified bool `json:"verified"`
}

// Status is a user's MFA enrollment status.
type Status struct {
	// Available lists the enabled factors, AUTHENTICATOR first. It is
	// shared with the Service's configuration: read it, do not modify it.
	Available []Factor
	// Details has one entry per factor that is verified or pending (and not
	// expired).
	Details map[Factor]FactorStatus
}

// Status reports which factors are enabled and which the user has verified
// or begun to enroll. It never includes secrets.
func (s *Service) Status(ctx context.Context, user string) (Status, error) {
	if err := checkUser(user); err != nil {
		return Status{}, err
	}
	es, err := s.store.Enrollments(ctx, user)
	if err != nil {
		return Status{}, s.internal(ctx, "status", err)
	}
	st := Status{Available: s.cfg.Factors, Details: make(map[Factor]FactorStatus, len(es))}
	now := s.cfg.Now()
	for _, e := range es {
		if e.Verified || now.Before(e.ExpiresAt) {
			st.Details[e.Factor] = FactorStatus{Verified: e.Verified}
		}
	}
	return st, nil
}

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
	sealed, keyID := s.keys.seal(secret, secretAD(user, Authenticator))
	e := storage.Enrollment{User: user, Factor: Authenticator, ID: newID(), Secret: sealed, KeyID: keyID,
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
// with a code from the app. The code's time step counts as used (S3).
func (s *Service) VerifyAuthenticator(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	prior, err := s.checkLock(ctx, user, Authenticator)
	if err != nil {
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
	secret, err := s.openSecret(ctx, e)
	if err != nil {
		return err
	}
	step, ok := s.match(secret, code, s.cfg.Now())
	if !ok {
		return s.fail(ctx, user, Authenticator, ErrInvalidCode)
	}
	switch err := s.store.ConfirmEnrollment(ctx, user, Authenticator, e.ID, step, s.cfg.Now()); {
	case errors.Is(err, storage.ErrAlreadyVerified):
		// A concurrent request confirmed it with this very code.
		return s.fail(ctx, user, Authenticator, ErrCodeReused)
	case errors.Is(err, storage.ErrNotFound):
		// Reset or replaced by a new QR code meanwhile.
		return ErrNotEnrolled
	case errors.Is(err, storage.ErrExpired):
		return ErrEnrollmentExpired
	case err != nil:
		return s.internal(ctx, "confirm authenticator", err)
	}
	s.succeed(ctx, user, Authenticator, EventEnrollVerified, prior)
	s.notify(ctx, user, Authenticator, "added")
	return nil
}

// CheckAuthenticator accepts a code of the user's verified authenticator:
// the code must match within the skew window and its time step must be
// newer than any accepted before (S3). Failures count toward lockout (S8).
// A user without a verified authenticator gets ErrNotEnrolled, after the
// same work as a wrong code (S21).
func (s *Service) CheckAuthenticator(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	e, prior, err := s.factorState(ctx, user, Authenticator)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return s.internal(ctx, "check authenticator", err)
	}
	if s.cfg.Now().Before(prior.LockedUntil) {
		return &LockedError{Until: prior.LockedUntil}
	}
	if err != nil || !e.Verified {
		// The same work as a real check: open a sealed secret, try the code.
		s.keys.open(s.keys.CurrentID(), s.dummySealed, secretAD(user, Authenticator))
		s.match(s.dummy, code, s.cfg.Now())
		return s.fail(ctx, user, Authenticator, ErrNotEnrolled)
	}
	secret, err := s.openSecret(ctx, e)
	if err != nil {
		return err
	}
	step, ok := s.match(secret, code, s.cfg.Now())
	if !ok {
		return s.fail(ctx, user, Authenticator, ErrInvalidCode)
	}
	switch err := s.store.AcceptStep(ctx, user, Authenticator, step); {
	case errors.Is(err, storage.ErrStepReused):
		s.emit(ctx, EventReplay, user, Authenticator, "code_reused")
		return s.fail(ctx, user, Authenticator, ErrCodeReused)
	case errors.Is(err, storage.ErrNotFound):
		return s.fail(ctx, user, Authenticator, ErrNotEnrolled)
	case err != nil:
		return s.internal(ctx, "accept step", err)
	}
	s.succeed(ctx, user, Authenticator, EventVerified, prior)
	return nil
}

// Proof is evidence that the caller holds one of the user's factors (S13).
type Proof struct {
	// Factor names what the code comes from.
	Factor Factor
	// Code is the current code of that factor.
	Code string
}

// ResetAuthenticator removes the user's authenticator enrollment (pending or
// verified) after checking proof, so the user must scan a new QR code. A
// password alone never removes MFA (S13): proof must be a current
// authenticator code or a recovery code (an email code needs a state
// token: see ResetAuthenticatorWithChallenge). Without a verified
// authenticator an authenticator proof gets ErrNotEnrolled. In-flight
// sign-ins of the user stop working (S15).
func (s *Service) ResetAuthenticator(ctx context.Context, user string, proof Proof) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if err := s.checkProof(ctx, user, proof, ""); err != nil {
		return err
	}
	return s.removeAuthenticator(ctx, user, EventSelfReset)
}

// ResetAuthenticatorWithChallenge is the lost-phone reset: the state token
// of a sign-in names the user, and proof is a code of the token's factor
// (an email code after SwitchChallenge to EMAIL) or a recovery code. The
// token is spent as by CompleteChallenge.
func (s *Service) ResetAuthenticatorWithChallenge(ctx context.Context, token string, proof Proof) error {
	res, err := s.CompleteChallenge(ctx, token, proof)
	if err != nil {
		return err
	}
	if res.NeedsEnrollment {
		return ErrNotEnrolled
	}
	return s.removeAuthenticator(ctx, res.User, EventSelfReset)
}

func (s *Service) removeAuthenticator(ctx context.Context, user string, typ EventType) error {
	if _, err := s.store.DeleteEnrollment(ctx, user, Authenticator); err != nil {
		return s.internal(ctx, "reset authenticator", err)
	}
	if err := s.store.ResetAttempts(ctx, user, Authenticator); err != nil {
		return s.internal(ctx, "reset authenticator", err)
	}
	if err := s.revokeChallenges(ctx, user); err != nil {
		return err
	}
	s.emit(ctx, typ, user, Authenticator, "")
	s.notify(ctx, user, Authenticator, "removed")
	return nil
}

var factorNames = map[Factor]string{Authenticator: "an authenticator app", Email: "email codes"}

// notify emails the user a notice that a factor was added or removed
// (S17), saying how to report a change they did not make. The change has
// happened already, so a failure to notify is logged, not returned.
func (s *Service) notify(ctx context.Context, user string, f Factor, change string) {
	info := requestInfo(ctx)
	address := ""
	if info.Actor == "" || info.Actor == user {
		address = info.Email
	}
	if address == "" && s.cfg.Directory != nil {
		var err error
		if address, err = s.cfg.Directory.EmailOf(ctx, user); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "mfa: change notice: address lookup failed", "err", err)
			return
		}
	}
	if address == "" {
		s.cfg.Logger.WarnContext(ctx, "mfa: change notice not sent: no email address", "change", change, "factor", string(f))
		return
	}
	actor := "You"
	if info.Actor != "" && info.Actor != user {
		actor = "An administrator (" + info.Actor + ")"
	}
	tpl := mailer.Localized{Default: s.cfg.NoticeTemplate, ByLocale: s.cfg.NoticeTemplates}.For(info.Locale)
	msg, err := tpl.Render(address, mailer.NoticeData{Product: s.cfg.Issuer, User: user,
		Change: change, FactorName: factorNames[f], Actor: actor, Time: s.cfg.Now(), ReportTo: s.cfg.ReportTo})
	if err == nil {
		err = s.mail.Send(context.WithoutCancel(ctx), msg)
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "mfa: change notice not sent", "err", err)
	}
}

// Principal is an authenticated caller and the roles the host gives it.
type Principal struct {
	Username string
	Roles    []string
}

// HasRole reports whether p has role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// AdminResetAuthenticator removes user's authenticator enrollment on behalf
// of admin, who must hold the admin role (S14). It is idempotent: a user
// with no enrollment is not an error. The audit event names the admin.
func (s *Service) AdminResetAuthenticator(ctx context.Context, admin Principal, user string) error {
	if !admin.HasRole(s.cfg.AdminRole) {
		return ErrForbidden
	}
	if err := checkUser(user); err != nil {
		return err
	}
	info := requestInfo(ctx)
	info.Actor, info.Locale = admin.Username, ""
	ctx = WithRequestInfo(ctx, info)
	return s.removeAuthenticator(ctx, user, EventAdminReset)
}

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
// that BeginEmail sent. The code is single use (S10) and failures count
// toward lockout (S8).
func (s *Service) VerifyEmail(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	prior, err := s.checkLock(ctx, user, Email)
	if err != nil {
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
	if err := s.consumeEmailCode(ctx, user, purposeEnrollEmail, code); err != nil {
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
	s.succeed(ctx, user, Email, EventEnrollVerified, prior)
	s.notify(ctx, user, Email, "added")
	return nil
}

// factorState reads the enrollment of (user, f) and its failure state, in
// one round trip when the Store can (storage.StateReader). A missing
// enrollment is storage.ErrNotFound, with the attempts still read.
func (s *Service) factorState(ctx context.Context, user string, f Factor) (storage.Enrollment, storage.Attempts, error) {
	if r, ok := s.store.(storage.StateReader); ok {
		return r.FactorState(ctx, user, f)
	}
	a, err := s.store.Attempts(ctx, user, f)
	if err != nil {
		return storage.Enrollment{}, a, err
	}
	e, err := s.store.Enrollment(ctx, user, f)
	return e, a, err
}

// checkLock refuses every check while the factor is locked, even a correct
// code (S8).
// It returns the failure state it read, for succeed.
func (s *Service) checkLock(ctx context.Context, user string, f Factor) (storage.Attempts, error) {
	a, err := s.store.Attempts(ctx, user, f)
	if err != nil {
		return a, s.internal(ctx, "attempts", err)
	}
	if s.cfg.Now().Before(a.LockedUntil) {
		return a, &LockedError{Until: a.LockedUntil}
	}
	return a, nil
}

// fail counts a failed check and locks the factor once the count reaches
// MaxFailures, for LockoutBase doubled per failure beyond it, capped at
// LockoutMax (S8). It returns cause, or a *LockedError when this failure
// locked the factor.
func (s *Service) fail(ctx context.Context, user string, f Factor, cause error) error {
	reason := codeOf(cause)
	s.emit(ctx, EventFailure, user, f, reason)
	n, err := s.store.RecordFailure(ctx, user, f)
	if err != nil {
		return s.internal(ctx, "record failure", err)
	}
	if n < s.cfg.MaxFailures {
		return cause
	}
	d := s.cfg.LockoutMax
	if extra := n - s.cfg.MaxFailures; extra < 32 {
		d = min(s.cfg.LockoutBase<<extra, s.cfg.LockoutMax)
	}
	until := s.cfg.Now().Add(d)
	if err := s.store.LockUntil(ctx, user, f, until); err != nil {
		return s.internal(ctx, "lock", err)
	}
	s.emit(ctx, EventLockout, user, f, reason)
	return &LockedError{Until: until}
}

// succeed clears the failure count (S8: a success resets it) — a store
// write skipped when prior, read by checkLock, shows nothing to clear —
// and emits typ.
func (s *Service) succeed(ctx context.Context, user string, f Factor, typ EventType, prior storage.Attempts) {
	if prior.Failures > 0 || !prior.LockedUntil.IsZero() {
		if err := s.store.ResetAttempts(ctx, user, f); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "mfa: reset attempts failed", "err", err)
		}
	}
	s.emit(ctx, typ, user, f, "")
}

// openSecret decrypts an enrollment's secret. One sealed under an older
// key is re-sealed under the current key when the Store can (S5 key
// rotation); that is best effort and never fails the check.
func (s *Service) openSecret(ctx context.Context, e storage.Enrollment) ([]byte, error) {
	secret, err := s.keys.open(e.KeyID, e.Secret, secretAD(e.User, e.Factor))
	if err != nil {
		return nil, s.internal(ctx, "open secret", err)
	}
	if r, ok := s.store.(storage.Resealer); ok && e.KeyID != s.keys.CurrentID() {
		sealed, keyID := s.keys.seal(secret, secretAD(e.User, e.Factor))
		err := r.ResealSecret(ctx, e.User, e.Factor, e.ID, e.KeyID, sealed, keyID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.cfg.Logger.ErrorContext(ctx, "mfa: could not reseal a secret under the current key", "err", err)
		}
	}
	return secret, nil
}

// secretAD binds a sealed secret to its user and factor (S5).
func secretAD(user string, f Factor) []byte {
	return []byte("mfakit/secret/v1\x00" + string(f) + "\x00" + user)
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrCodeReused):
		return "code_reused"
	case errors.Is(err, ErrCodeExpired):
		return "code_expired"
	case errors.Is(err, ErrNotEnrolled):
		return "not_enrolled"
	}
	return "invalid_code"
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newDigits returns n random decimal digits from crypto/rand (S10).
func newDigits(n int) string {
	max := big.NewInt(1)
	for range n {
		max.Mul(max, big.NewInt(10))
	}
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%0*d", n, v)
}

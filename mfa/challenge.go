package mfa

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// Purposes of the codes a login challenge stores.
const (
	purposeLogin      = "login"       // the state token itself
	purposeLoginEmail = "login-email" // the code an EMAIL challenge sends
)

// Errors of the login challenge.
var (
	// ErrInvalidToken: the state token is malformed, unknown, already used,
	// or was revoked by a reset.
	ErrInvalidToken = errors.New("mfa: invalid state token")
	// ErrTokenExpired: the state token has expired; sign in again.
	ErrTokenExpired = errors.New("mfa: state token expired")
)

// ChallengeStatus says what a login challenge asks of the user.
type ChallengeStatus string

// The challenge statuses of the seed vendor's login flow.
const (
	// ChallengeNone: no second factor is needed; the host signs the user in.
	ChallengeNone ChallengeStatus = ""
	// ChallengeVerify: the user must present a code of Challenge.Factor.
	ChallengeVerify ChallengeStatus = "VERIFY"
	// ChallengeEnroll: policy requires MFA and the user has no verified
	// factor; completing the challenge needs no code and tells the host to
	// let the user in only to enroll.
	ChallengeEnroll ChallengeStatus = "ENROLL"
)

// Challenge is the second step of a sign-in, started after the host has
// checked the password.
type Challenge struct {
	// Status says what is asked; ChallengeNone means nothing.
	Status ChallengeStatus
	// Factor is the factor to use (for ChallengeVerify).
	Factor Factor
	// Token is the opaque, single-use state token.
	Token string
	// PublicKey is, for a WEBAUTHN challenge, the request options for the
	// browser: a PublicKeyCredentialRequestOptionsJSON (allowCredentials
	// lists the user's credentials) to pass to
	// PublicKeyCredential.parseRequestOptionsFromJSON. Its challenge is
	// valid 5 minutes, or until the token expires if sooner (S31). Nil
	// for the other factors.
	PublicKey json.RawMessage
	// ExpiresAt is when Token stops working.
	ExpiresAt time.Time
}

// LoginResult is what a completed challenge proves.
type LoginResult struct {
	// User passed the challenge.
	User string
	// Factor is what the user presented (RECOVERY for a recovery code).
	Factor Factor
	// NeedsEnrollment is true for an ENROLL challenge: the user holds no
	// factor yet, and the host should let them in only to enroll.
	NeedsEnrollment bool
}

const enrollMarker = "ENROLL"

// StartChallenge begins the MFA step of a sign-in for user, whose password
// the host has just checked. It picks the first verified factor in
// Config.ChallengeOrder; for EMAIL it sends the code to address now. A user
// with no verified factor gets ChallengeNone, or ChallengeEnroll when
// Config.RequireMFA is set. Starting a challenge replaces the user's
// previous one.
func (s *Service) StartChallenge(ctx context.Context, user, address string) (Challenge, error) {
	if err := checkUser(user); err != nil {
		return Challenge{}, err
	}
	held, err := s.heldFactors(ctx, user)
	if err != nil {
		return Challenge{}, s.internal(ctx, "start challenge", err)
	}
	for _, f := range s.cfg.ChallengeOrder {
		if held[f] && s.enabled(f) {
			return s.issueChallenge(ctx, user, f, address)
		}
	}
	if !s.cfg.RequireMFA {
		return Challenge{Status: ChallengeNone}, nil
	}
	return s.issueChallenge(ctx, user, enrollMarker, address)
}

// AddressFunc finds the email address of a user, for a code sent where
// the caller holds no user session (a switched sign-in challenge).
type AddressFunc func(ctx context.Context, user string) (string, error)

// SwitchChallenge trades a live state token for a challenge of another
// verified factor of the same user, e.g. EMAIL when the phone with the
// authenticator is lost, or AUTHENTICATOR when the passkey is not at hand
// (switching to the token's own factor renews it: a WEBAUTHN challenge
// gets a fresh WebAuthn challenge). The old token stops working. The
// token is checked before anything about the user is looked up (S26):
// addressOf is called only for the user of a live token, to find where an
// EMAIL code goes.
func (s *Service) SwitchChallenge(ctx context.Context, token string, to Factor, addressOf AddressFunc) (Challenge, error) {
	user, from, expires, err := s.consumeToken(ctx, token)
	if err != nil {
		return Challenge{}, err
	}
	held, _, err := s.heldSince(ctx, user, to)
	address := ""
	switch {
	case err != nil:
		err = s.internal(ctx, "switch challenge", err)
	case !held || !s.enabled(to):
		err = ErrNotEnrolled
	case to == Email && addressOf == nil:
		err = ErrNoEmail
	default:
		if to == Email {
			address, err = addressOf(ctx, user)
		}
		if err == nil {
			var ch Challenge
			if ch, err = s.issueChallenge(ctx, user, to, address); err == nil {
				return ch, nil
			}
		}
	}
	// Refused (throttled, say): the old token stays good.
	s.restoreToken(ctx, user, from, token, expires)
	return Challenge{}, err
}

func (s *Service) issueChallenge(ctx context.Context, user string, f Factor, address string) (Challenge, error) {
	now := s.cfg.Now()
	expires := now.Add(s.cfg.ChallengeTTL).Truncate(time.Second)
	var publicKey json.RawMessage
	switch f {
	case Email:
		if err := s.sendCode(ctx, user, address, purposeLoginEmail, expires); err != nil {
			return Challenge{}, err
		}
	case WebAuthn:
		until := now.Add(webAuthnChallengeTTL)
		if expires.Before(until) {
			until = expires
		}
		assertion, err := s.requestOptions(ctx, user, purposeWebAuthnLogin, until)
		if err != nil {
			return Challenge{}, err
		}
		if publicKey, err = json.Marshal(assertion.Response); err != nil {
			return Challenge{}, s.internal(ctx, "webauthn request options", err)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	token := strings.Join([]string{"v1", b64.EncodeToString([]byte(user)), string(f),
		strconv.FormatInt(expires.Unix(), 10), b64.EncodeToString(secret)}, ".")
	err := s.store.PutCode(ctx, storage.Code{User: user, Purpose: purposeLogin,
		Hash: s.keys.codeHash(user, purposeLogin, token), ExpiresAt: expires})
	if err != nil {
		return Challenge{}, s.internal(ctx, "store challenge", err)
	}
	status := ChallengeVerify
	if f == enrollMarker {
		status, f = ChallengeEnroll, ""
	}
	return Challenge{Status: status, Factor: f, Token: token, ExpiresAt: expires, PublicKey: publicKey}, nil
}

var b64 = base64.RawURLEncoding

// parseToken splits a state token into its user, factor and expiry. The
// parts are only claims until the token's hash is found in the store.
func parseToken(token string) (user string, f Factor, expires time.Time, err error) {
	parts := strings.Split(token, ".")
	if len(token) > 1024 || len(parts) != 5 || parts[0] != "v1" {
		return "", "", time.Time{}, ErrInvalidToken
	}
	u, err := b64.DecodeString(parts[1])
	if err != nil || checkUser(string(u)) != nil {
		return "", "", time.Time{}, ErrInvalidToken
	}
	exp, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return "", "", time.Time{}, ErrInvalidToken
	}
	return string(u), Factor(parts[2]), time.Unix(exp, 0), nil
}

// consumeToken uses up a state token (single use, S3) and returns what it
// is bound to.
func (s *Service) consumeToken(ctx context.Context, token string) (string, Factor, time.Time, error) {
	user, f, expires, err := parseToken(token)
	if err != nil {
		return "", "", time.Time{}, err
	}
	// Expiry is judged from the token's own claim, which tells an attacker
	// nothing about the user. The store's ErrExpired is answered like any
	// unknown token: it comes before the hash is compared, so it would tell
	// that the named user has a sign-in in progress (S26).
	if !s.cfg.Now().Before(expires) {
		return "", "", time.Time{}, ErrTokenExpired
	}
	switch err := s.consumeCode(ctx, user, purposeLogin, token); {
	case errors.Is(err, storage.ErrExpired), errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCodeMismatch):
		return "", "", time.Time{}, ErrInvalidToken
	case err != nil:
		return "", "", time.Time{}, s.internal(ctx, "consume state token", err)
	}
	return user, f, expires, nil
}

// CompleteChallenge finishes a sign-in: the state token must be live and
// proof must be a current code of the token's factor, or a recovery code.
// For a WEBAUTHN token the proof's Code is the assertion (an
// AuthenticationResponseJSON) answering the Challenge's PublicKey.
// The token is single use: it is spent by this call, and put back (with
// its original expiry) only when the code was wrong and the factor is not
// now locked, so the user may try again. Failures count toward lockout (S8).
func (s *Service) CompleteChallenge(ctx context.Context, token string, proof Proof) (LoginResult, error) {
	user, f, expires, err := s.consumeToken(ctx, token)
	if err != nil {
		return LoginResult{}, err
	}
	if f == enrollMarker {
		return LoginResult{User: user, NeedsEnrollment: true}, nil
	}
	if proof.Factor == "" {
		proof.Factor = f
	}
	// A code for a WEBAUTHN token (or an assertion for another) is the
	// wrong kind of proof, not a wrong one: refused before it is counted.
	assertion := strings.HasPrefix(strings.TrimSpace(proof.Code), "{")
	wrongKind := proof.Factor != Recovery && (proof.Factor == WebAuthn) != assertion
	if (proof.Factor != f && proof.Factor != Recovery) || wrongKind {
		s.restoreToken(ctx, user, f, token, expires)
		return LoginResult{}, ErrUnsupportedProof
	}
	if err := s.checkProof(ctx, user, proof, purposeLoginEmail, purposeWebAuthnLogin); err != nil {
		if !errors.Is(err, ErrLocked) && !isInternal(err) {
			s.restoreToken(ctx, user, f, token, expires)
		}
		return LoginResult{}, err
	}
	return LoginResult{User: user, Factor: proof.Factor}, nil
}

// restoreToken puts a spent state token back after a refused code, so the
// user may try again. A reset that ran while the code was checked must not
// be undone by it (S15, S24): once the token is back, it is taken out again
// unless the factor it was issued for is still verified, and was verified
// before the token was issued (a token from before a reset and
// re-enrollment is dead). Only this token is taken out: ConsumeCode checks
// its hash, so a newer sign-in stays.
func (s *Service) restoreToken(ctx context.Context, user string, f Factor, token string, expires time.Time) {
	ctx = context.WithoutCancel(ctx)
	hash := s.keys.codeHash(user, purposeLogin, token)
	err := s.store.PutCode(ctx, storage.Code{User: user, Purpose: purposeLogin, Hash: hash, ExpiresAt: expires})
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "mfa: could not restore a state token", "err", err)
		return
	}
	if f == enrollMarker {
		return // the user holds no factor: there is no reset to undo
	}
	// The token was issued at most a second after its expiry less the TTL
	// (the expiry is truncated to the second): a factor verified by then
	// predates the token.
	issued := expires.Add(-s.cfg.ChallengeTTL + time.Second)
	held, since, err := s.heldSince(ctx, user, f)
	if err == nil && held && !since.After(issued) {
		return
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "mfa: could not check a restored state token; revoking it", "err", err)
	}
	if err := s.store.ConsumeCode(ctx, user, purposeLogin, hash, s.cfg.Now()); err != nil &&
		!errors.Is(err, storage.ErrCodeMismatch) && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrExpired) {
		s.cfg.Logger.ErrorContext(ctx, "mfa: could not revoke a restored state token", "err", err)
	}
}

// checkProof checks a code of a factor the user holds: an authenticator
// code, an email code stored under emailPurpose, a WebAuthn assertion
// answering the challenge stored under webAuthnPurpose, or a recovery
// code.
func (s *Service) checkProof(ctx context.Context, user string, proof Proof, emailPurpose, webAuthnPurpose string) error {
	switch proof.Factor {
	case WebAuthn:
		if !s.webAuthnOn() {
			return ErrUnsupportedProof
		}
		return s.checkAssertion(ctx, user, webAuthnPurpose, []byte(proof.Code))
	case Authenticator:
		return s.CheckAuthenticator(ctx, user, proof.Code)
	case Email:
		if emailPurpose == "" {
			return ErrUnsupportedProof
		}
		a, err := s.reserve(ctx, user, Email)
		if err != nil {
			return err
		}
		if err := s.consumeEmailCode(ctx, user, emailPurpose, proof.Code, a); err != nil {
			return err
		}
		s.succeeded(ctx, user, Email, EventVerified, false)
		return nil
	case Recovery:
		return s.UseRecoveryCode(ctx, user, proof.Code)
	}
	return ErrUnsupportedProof
}

// revokeChallenges ends the user's in-flight sign-in and its email code
// or WebAuthn challenge, and the WebAuthn challenges of step-ups and
// enrollments (S15), so a reset takes effect at once.
func (s *Service) revokeChallenges(ctx context.Context, user string) error {
	purposes := []string{purposeLogin, purposeLoginEmail}
	if s.webAuthnOn() {
		purposes = append(purposes, purposeWebAuthnLogin, purposeWebAuthnCheck, purposeWebAuthnRegister)
	}
	for _, p := range purposes {
		if err := s.store.DeleteCode(ctx, user, p); err != nil {
			return s.internal(ctx, "revoke challenge", err)
		}
	}
	return nil
}

// internalError marks errors that come from the store or the mailer.
type internalError struct{ err error }

// Error returns the wrapped error's text.
func (e *internalError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *internalError) Unwrap() error { return e.err }

// Is reports whether target is ErrInternal.
func (e *internalError) Is(target error) bool { return target == ErrInternal }

func isInternal(err error) bool {
	var ie *internalError
	return errors.As(err, &ie)
}

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

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/storage"
)

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
	lock        storage.LockPolicy
	// match is totp.Match; a field so tests can count the checks (S21).
	match func(secret []byte, code string, now time.Time) (int64, bool)
	// wa verifies WebAuthn ceremonies and creds keeps the credentials;
	// both nil unless WEBAUTHN is enabled.
	wa    *webauthn.WebAuthn
	creds storage.CredentialStore
}

// New returns a Service. store keeps state, mail sends codes, and keys seals
// TOTP secrets and keys code hashes; all three are required. cfg may be the
// zero value. Enabling WEBAUTHN (Config.WebAuthn) needs a store that
// implements storage.CredentialStore.
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
		lock: storage.LockPolicy{MaxFailures: cfg.MaxFailures, Base: cfg.LockoutBase, Max: cfg.LockoutMax},
	}
	if s.enabled(WebAuthn) {
		creds, ok := store.(storage.CredentialStore)
		if !ok {
			return nil, errors.New("mfa: Config.WebAuthn needs a Store that implements storage.CredentialStore")
		}
		wa, err := cfg.WebAuthn.relyingParty()
		if err != nil {
			return nil, fmt.Errorf("mfa: WebAuthn: %w", err)
		}
		s.wa, s.creds = wa, creds
	}
	rand.Read(s.dummy)
	s.dummySealed, _ = keys.seal(s.dummy, secretAD("", Authenticator, ""))
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
	// Count is, for WEBAUTHN, how many credentials the user holds; 0 for
	// the other factors.
	Count int `json:"count,omitempty"`
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
	entries, err := s.AppendStatus(ctx, user, nil)
	if err != nil {
		return Status{}, err
	}
	st := Status{Available: s.cfg.Factors, Details: make(map[Factor]FactorStatus, len(entries))}
	for _, e := range entries {
		st.Details[e.Factor] = e.FactorStatus
	}
	return st, nil
}

// FactorEntry is one factor of a user's status.
type FactorEntry struct {
	Factor Factor
	FactorStatus
}

// AppendStatus is Status for callers that render the status themselves,
// without building its map (the HTTP layer's mfaDetails, the kit's most
// frequent request): it appends to dst an entry for each factor the user
// has verified or begun to enroll, in the order Status puts them in its
// Details, where a later entry for a factor replaces an earlier one. The
// enabled factors are Config().Factors.
func (s *Service) AppendStatus(ctx context.Context, user string, dst []FactorEntry) ([]FactorEntry, error) {
	if err := checkUser(user); err != nil {
		return dst, err
	}
	es, err := s.store.Enrollments(ctx, user)
	if err != nil {
		return dst, s.internal(ctx, "status", err)
	}
	now := s.cfg.Now()
	for _, e := range es {
		if e.Verified || now.Before(e.ExpiresAt) {
			dst = append(dst, FactorEntry{e.Factor, FactorStatus{Verified: e.Verified}})
		}
	}
	if s.webAuthnOn() {
		creds, err := s.creds.Credentials(ctx, user)
		if err != nil {
			return dst, s.internal(ctx, "status", err)
		}
		if len(creds) > 0 {
			dst = append(dst, FactorEntry{WebAuthn, FactorStatus{Verified: true, Count: len(creds)}})
		}
	}
	return dst, nil
}

// heldFactors returns the factors the user holds verified: enrollments,
// and WEBAUTHN when it is enabled and the user has a credential.
func (s *Service) heldFactors(ctx context.Context, user string) (map[Factor]bool, error) {
	es, err := s.store.Enrollments(ctx, user)
	if err != nil {
		return nil, err
	}
	held := make(map[Factor]bool, len(es)+1)
	for _, e := range es {
		if e.Verified {
			held[e.Factor] = true
		}
	}
	if s.webAuthnOn() {
		creds, err := s.creds.Credentials(ctx, user)
		if err != nil {
			return nil, err
		}
		held[WebAuthn] = len(creds) > 0
	}
	return held, nil
}

// holdsAny reports whether the user holds any verified factor.
func (s *Service) holdsAny(ctx context.Context, user string) (bool, error) {
	held, err := s.heldFactors(ctx, user)
	for _, h := range held {
		if h {
			return true, err
		}
	}
	return false, err
}

// heldSince reports whether the user holds factor f verified, and since
// when: the enrollment's verification, or for WEBAUTHN the oldest
// credential's registration.
func (s *Service) heldSince(ctx context.Context, user string, f Factor) (bool, time.Time, error) {
	if f == WebAuthn {
		if !s.webAuthnOn() {
			return false, time.Time{}, nil
		}
		creds, err := s.creds.Credentials(ctx, user)
		if err != nil || len(creds) == 0 {
			return false, time.Time{}, err
		}
		oldest := creds[0].CreatedAt
		for _, c := range creds[1:] {
			if c.CreatedAt.Before(oldest) {
				oldest = c.CreatedAt
			}
		}
		return true, oldest, nil
	}
	e, err := s.store.Enrollment(ctx, user, f)
	if errors.Is(err, storage.ErrNotFound) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, err
	}
	return e.Verified, e.VerifiedAt, nil
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

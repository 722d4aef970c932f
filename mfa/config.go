package mfa

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/pquerna/otp"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/storage"
)

// Factor names a second factor; the values are the API's mfatype strings.
type Factor = storage.Factor

// The factors mfakit serves.
const (
	Authenticator = storage.Authenticator
	Email         = storage.Email
	// Recovery names recovery codes in a Proof, in events and in failure
	// counts; it is not enrolled (see storage.Factor.Enrollable).
	Recovery = storage.Recovery
	// WebAuthn names passkeys and security keys (S31–S33); a user may hold
	// several. Enabled by Config.WebAuthn.
	WebAuthn = storage.WebAuthn
)

// isFactor reports whether f is a factor a user holds: AUTHENTICATOR,
// EMAIL or WEBAUTHN.
func isFactor(f Factor) bool { return f.Enrollable() || f == WebAuthn }

// Config tunes a Service. Its zero value is safe and matches the defaults
// each field documents; New fills them in and rejects unsafe values.
type Config struct {
	// Issuer names the service in authenticator apps and emails.
	// Default "mfakit". A ':' is replaced by '-' (S6).
	Issuer string

	// Algorithm of TOTP codes. Default SHA1, the only one Google
	// Authenticator honours (S6).
	Algorithm otp.Algorithm
	// Digits of TOTP codes: 6 (default) or 8.
	Digits otp.Digits
	// Period of a TOTP step. Default 30s; whole seconds, 15s to 5m.
	Period time.Duration
	// Skew is how many steps before and after now are accepted (S2).
	// Default 1; at most 2. A negative value accepts the current step only.
	Skew int
	// SecretSize is the TOTP secret length in bytes. Default 20 (160 bits);
	// at least 16 (S4), at most 64.
	SecretSize int

	// PendingTTL is how long a started enrollment can be verified (S7).
	// Default 10 minutes.
	PendingTTL time.Duration
	// EmailCodeTTL is how long an email code is valid (S10). Default and
	// maximum 10 minutes.
	EmailCodeTTL time.Duration
	// EmailResendInterval is the least time between two codes sent to one
	// user (S9). Default 60 seconds.
	EmailResendInterval time.Duration
	// EmailHourlyLimit caps the codes sent to one user per hour (S9).
	// Default 5.
	EmailHourlyLimit int

	// MaxFailures is how many checks of a factor may be evaluated since
	// its last success before it locks (S8, S22). Each check is counted
	// before its code is compared, so concurrent checks never pass the
	// limit. Default 5; at most 100.
	MaxFailures int
	// LockoutBase is the first lockout; each further failure while the
	// count stays at or above MaxFailures doubles it, saturating at
	// LockoutMax (S27). Default 1 minute.
	LockoutBase time.Duration
	// LockoutMax caps the lockout. Default 1 hour.
	LockoutMax time.Duration

	// Factors lists the enabled factors. Default AUTHENTICATOR and EMAIL,
	// and WEBAUTHN when WebAuthn is set; the status endpoint lists
	// AUTHENTICATOR first whatever the order here (S11), then EMAIL, then
	// WEBAUTHN. Listing WEBAUTHN needs WebAuthn.
	Factors []Factor
	// WebAuthn configures passkeys and security keys, the WEBAUTHN factor
	// (S31–S33): the relying party and its allowed origins. Default nil:
	// WEBAUTHN is off. Setting it needs a Store that implements
	// storage.CredentialStore.
	WebAuthn *WebAuthnConfig
	// DisallowEmailOnly refuses to verify email as a user's only factor
	// (S11). Default false: email alone is allowed.
	DisallowEmailOnly bool
	// AdminRole is the role that may reset another user's MFA (S14).
	// Default "ROLE_ADMIN_CUSTOMER".
	AdminRole string

	// ChallengeTTL is how long a sign-in's state token lives. Default 10
	// minutes; at most 10 minutes, as it may carry an email code.
	ChallengeTTL time.Duration
	// ChallengeOrder is the order in which a sign-in picks the user's
	// verified factor. Default WEBAUTHN, then AUTHENTICATOR, then EMAIL:
	// a passkey is the one factor a phishing site cannot relay, so a user
	// who holds one is asked for it first (the others stay available
	// through a switch of the challenge). Factors not listed are never
	// asked for at sign-in.
	ChallengeOrder []Factor
	// RequireMFA makes a sign-in of a user with no verified factor answer
	// ENROLL instead of letting them in with the password alone. Default
	// false.
	RequireMFA bool
	// RecoveryCodes is the size of a recovery code set (S12). Default 10.
	RecoveryCodes int

	// CodeTemplate renders the email that carries a one-time code.
	// Default mailer.DefaultCodeTemplate.
	CodeTemplate *mailer.Template
	// NoticeTemplate renders the notice sent when a factor is added or
	// removed (S17). Default mailer.DefaultNoticeTemplate.
	NoticeTemplate *mailer.Template
	// CodeTemplates and NoticeTemplates hold translations by locale (a
	// BCP 47 tag like "de-CH", or a language like "de"), chosen by the
	// RequestInfo.Locale of the request; CodeTemplate and NoticeTemplate
	// serve every other locale. Default none.
	CodeTemplates, NoticeTemplates map[string]*mailer.Template
	// Directory finds a user's email address where the request does not
	// carry it: for change notices (an admin reset, say), and for the code
	// of a sign-in switched to EMAIL through httpx (Handlers.SwitchChallenge),
	// the one way the kit looks addresses up. Default none: such notices go
	// to the address in the request context, or are skipped with a warning
	// in the log, and httpx refuses the switch with no_email.
	Directory Directory
	// ReportTo is whom a change notice tells the user to contact about a
	// change they did not make. Default "your administrator".
	ReportTo string

	// EndSessions is called after a reset that closes every way back
	// (S24): an admin reset, or a reset that removed the user's last
	// verified factor. The host ends every session of user there, so a
	// session (and its MFA time) from before the reset stops counting. It
	// runs after the reset has happened; it should not block for long.
	// Default none.
	EndSessions func(ctx context.Context, user string)
	// AcceptUnboundSecrets opens TOTP secrets sealed before enrollment ids
	// were bound into the associated data (S30), and reseals each under
	// the new binding when it is opened. Turn it on only while upgrading
	// a store written by an older version. Default false.
	AcceptUnboundSecrets bool

	// Now is the kit's one clock: the Service reads it, and so do the
	// httpx handlers built on it (step-up checks, lifetimes in answers,
	// Retry-After). Default time.Now.
	Now func() time.Time
	// Logger receives operational errors (never secrets or codes).
	// Default slog.Default().
	Logger *slog.Logger
	// Events receives the audit trail (S16). Default: events are dropped.
	Events EventHook
}

func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		c.Issuer = "mfakit"
	}
	switch c.Algorithm {
	case otp.AlgorithmSHA1, otp.AlgorithmSHA256, otp.AlgorithmSHA512:
	default:
		return c, fmt.Errorf("mfa: unsupported algorithm %v", c.Algorithm)
	}
	if c.Digits == 0 {
		c.Digits = otp.DigitsSix
	}
	if c.Digits != otp.DigitsSix && c.Digits != otp.DigitsEight {
		return c, fmt.Errorf("mfa: Digits must be 6 or 8, got %d", c.Digits)
	}
	if c.Period == 0 {
		c.Period = 30 * time.Second
	}
	if c.Period%time.Second != 0 || c.Period < 15*time.Second || c.Period > 5*time.Minute {
		return c, fmt.Errorf("mfa: Period must be whole seconds from 15s to 5m, got %s", c.Period)
	}
	switch {
	case c.Skew == 0:
		c.Skew = 1
	case c.Skew < 0:
		c.Skew = 0
	case c.Skew > 2:
		return c, fmt.Errorf("mfa: Skew must be at most 2, got %d", c.Skew)
	}
	if c.SecretSize == 0 {
		c.SecretSize = 20
	}
	if c.SecretSize < 16 || c.SecretSize > 64 {
		return c, fmt.Errorf("mfa: SecretSize must be 16 to 64 bytes, got %d", c.SecretSize)
	}
	c.PendingTTL = positive(c.PendingTTL, 10*time.Minute)
	c.EmailCodeTTL = positive(c.EmailCodeTTL, 10*time.Minute)
	if c.EmailCodeTTL > 10*time.Minute {
		return c, fmt.Errorf("mfa: EmailCodeTTL must be at most 10m (S10), got %s", c.EmailCodeTTL)
	}
	c.EmailResendInterval = positive(c.EmailResendInterval, time.Minute)
	if c.EmailHourlyLimit <= 0 {
		c.EmailHourlyLimit = 5
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.MaxFailures > 100 {
		return c, fmt.Errorf("mfa: MaxFailures must be at most 100 (S8), got %d", c.MaxFailures)
	}
	c.LockoutBase = positive(c.LockoutBase, time.Minute)
	c.LockoutMax = positive(c.LockoutMax, time.Hour)
	if c.LockoutMax < c.LockoutBase {
		c.LockoutMax = c.LockoutBase
	}
	if len(c.Factors) == 0 {
		c.Factors = []Factor{Authenticator, Email}
		if c.WebAuthn != nil {
			c.Factors = append(c.Factors, WebAuthn)
		}
	}
	enabled := make([]Factor, 0, 3)
	for _, f := range []Factor{Authenticator, Email, WebAuthn} {
		if slices.Contains(c.Factors, f) {
			enabled = append(enabled, f)
		}
	}
	for _, f := range c.Factors {
		if !isFactor(f) {
			return c, fmt.Errorf("mfa: unknown factor %q", f)
		}
	}
	c.Factors = enabled
	if c.WebAuthn != nil {
		wc, err := c.WebAuthn.withDefaults(c.Issuer)
		if err != nil {
			return c, err
		}
		c.WebAuthn = &wc
	} else if slices.Contains(c.Factors, WebAuthn) {
		return c, fmt.Errorf("mfa: Factors lists WEBAUTHN but Config.WebAuthn is not set")
	}
	if c.AdminRole == "" {
		c.AdminRole = "ROLE_ADMIN_CUSTOMER"
	}
	c.ChallengeTTL = positive(c.ChallengeTTL, 10*time.Minute)
	if c.ChallengeTTL > 10*time.Minute {
		return c, fmt.Errorf("mfa: ChallengeTTL must be at most 10m, got %s", c.ChallengeTTL)
	}
	if len(c.ChallengeOrder) == 0 {
		c.ChallengeOrder = []Factor{WebAuthn, Authenticator, Email}
	}
	for _, f := range c.ChallengeOrder {
		if !isFactor(f) {
			return c, fmt.Errorf("mfa: unknown factor %q in ChallengeOrder", f)
		}
	}
	if c.RecoveryCodes <= 0 {
		c.RecoveryCodes = 10
	}
	if c.RecoveryCodes > 100 {
		return c, fmt.Errorf("mfa: RecoveryCodes must be at most 100, got %d", c.RecoveryCodes)
	}
	if c.CodeTemplate == nil {
		c.CodeTemplate = mailer.DefaultCodeTemplate
	}
	if c.NoticeTemplate == nil {
		c.NoticeTemplate = mailer.DefaultNoticeTemplate
	}
	if c.ReportTo == "" {
		c.ReportTo = "your administrator"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Events == nil {
		c.Events = EventHookFunc(func(context.Context, Event) {})
	}
	return c, nil
}

func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Directory finds users' email addresses.
type Directory interface {
	// EmailOf returns user's email address, or "" when it has none.
	EmailOf(ctx context.Context, user string) (string, error)
}

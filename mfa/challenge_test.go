package mfa_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

func TestChallengeAuthenticator(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	ch, err := f.svc.StartChallenge(ctx, "alice", "alice@example.com")
	if err != nil || ch.Status != mfa.ChallengeNone || ch.Token != "" {
		t.Fatalf("no factor, no policy: %+v %v", ch, err)
	}
	secret := f.enroll(t, "alice")
	f.clock.Add(30 * time.Second)
	ch, err = f.svc.StartChallenge(ctx, "alice", "alice@example.com")
	if err != nil || ch.Status != mfa.ChallengeVerify || ch.Factor != mfa.Authenticator || ch.Token == "" ||
		!ch.ExpiresAt.After(f.clock.Now().Add(9*time.Minute)) {
		t.Fatalf("challenge = %+v, %v", ch, err)
	}
	// A wrong code fails, counts, and leaves the token usable.
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: "000000"}); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("wrong code: %v", err)
	}
	res, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 0)})
	if err != nil || res.User != "alice" || res.Factor != mfa.Authenticator || res.NeedsEnrollment {
		t.Fatalf("complete = %+v, %v", res, err)
	}
	// S3: the token is single use.
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 1)}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("token reused: %v", err)
	}
	// Tampering with the claims inside the token breaks its hash.
	ch, _ = f.svc.StartChallenge(ctx, "alice", "")
	forged := strings.Replace(ch.Token, ".AUTHENTICATOR.", ".EMAIL.", 1)
	if _, err := f.svc.CompleteChallenge(ctx, forged, mfa.Proof{Code: "123456"}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("forged token: %v", err)
	}
	for _, junk := range []string{"", "x", "v1.....", "v1.!!.AUTHENTICATOR.1.x", strings.Repeat("a", 5000)} {
		if _, err := f.svc.CompleteChallenge(ctx, junk, mfa.Proof{Code: "123456"}); !errors.Is(err, mfa.ErrInvalidToken) {
			t.Fatalf("junk token %q: %v", junk, err)
		}
	}
	// Expiry.
	f.clock.Add(10*time.Minute + time.Second)
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 0)}); !errors.Is(err, mfa.ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
}

// S8 through the challenge: after the lock the token is spent too.
func TestChallengeLockout(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "bob")
	f.clock.Add(30 * time.Second)
	ch, _ := f.svc.StartChallenge(ctx, "bob", "")
	wrong := "000000"
	if wrong == f.code(secret, 0) || wrong == f.code(secret, 1) || wrong == f.code(secret, -1) {
		wrong = "111111"
	}
	for range 4 {
		if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: wrong}); !errors.Is(err, mfa.ErrInvalidCode) {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: wrong}); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("5th failure: %v", err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 0)}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("token after lockout: %v", err)
	}
}

func TestChallengeEmailAndEnroll(t *testing.T) {
	f := newFixture(t, mfa.Config{RequireMFA: true})
	ctx := context.Background()
	ch, err := f.svc.StartChallenge(ctx, "carol", "carol@example.com")
	if err != nil || ch.Status != mfa.ChallengeEnroll || ch.Token == "" {
		t.Fatalf("enroll challenge: %+v %v", ch, err)
	}
	res, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{})
	if err != nil || !res.NeedsEnrollment || res.User != "carol" {
		t.Fatalf("complete enroll: %+v %v", res, err)
	}

	if err := f.svc.BeginEmail(ctx, "carol", "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyEmail(ctx, "carol", f.mail.LastCode("carol@example.com")); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	before := len(f.mail.Messages())
	ch, err = f.svc.StartChallenge(ctx, "carol", "carol@example.com")
	if err != nil || ch.Factor != mfa.Email {
		t.Fatalf("email challenge: %+v %v", ch, err)
	}
	if got := len(f.mail.Messages()) - before; got != 1 {
		t.Fatalf("the email challenge sent %d messages, want exactly 1", got)
	}
	code := f.mail.LastCode("carol@example.com")
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Authenticator, Code: code}); !errors.Is(err, mfa.ErrUnsupportedProof) {
		t.Fatalf("another factor's proof: %v", err)
	}
	res, err = f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: code})
	if err != nil || res.Factor != mfa.Email {
		t.Fatalf("complete email: %+v %v", res, err)
	}
}

// S12: recovery codes are strong, shown once, single use, and regenerating
// invalidates the old set; they complete a challenge and prove a reset.
func TestRecoveryCodes(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	if _, err := f.svc.GenerateRecoveryCodes(ctx, "dave"); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("codes without a factor: %v", err)
	}
	secret := f.enroll(t, "dave")
	codes, err := f.svc.GenerateRecoveryCodes(ctx, "dave")
	if err != nil || len(codes) != 10 {
		t.Fatalf("codes = %v, %v", codes, err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 19 || c[4] != '-' || seen[c] {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	old := codes
	codes, _ = f.svc.GenerateRecoveryCodes(ctx, "dave")
	if err := f.svc.UseRecoveryCode(ctx, "dave", old[0]); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("old set still works: %v", err)
	}
	// Lower case, no dashes, look-alikes: still the same code.
	sloppy := strings.ToLower(strings.ReplaceAll(codes[0], "-", ""))
	sloppy = strings.ReplaceAll(strings.ReplaceAll(sloppy, "0", "o"), "1", "l")
	if err := f.svc.UseRecoveryCode(ctx, "dave", sloppy); err != nil {
		t.Fatalf("normalised code: %v", err)
	}
	if err := f.svc.UseRecoveryCode(ctx, "dave", codes[0]); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("code reused: %v", err)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, "dave"); n != 9 {
		t.Fatalf("left = %d", n)
	}
	// A recovery code completes an authenticator challenge.
	ch, _ := f.svc.StartChallenge(ctx, "dave", "")
	res, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Recovery, Code: codes[1]})
	if err != nil || res.Factor != mfa.Recovery {
		t.Fatalf("recovery login: %+v %v", res, err)
	}
	// Lost phone: a state token plus a recovery code resets the authenticator.
	ch, _ = f.svc.StartChallenge(ctx, "dave", "")
	if err := f.svc.ResetAuthenticatorWithChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Recovery, Code: codes[2]}); err != nil {
		t.Fatal(err)
	}
	st, _ := f.svc.Status(ctx, "dave")
	if len(st.Details) != 0 {
		t.Fatalf("status after lost-phone reset = %+v", st)
	}
	_ = secret
}

// S15: a reset ends in-flight sign-ins at once.
func TestResetRevokesChallenges(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "erin")
	f.clock.Add(30 * time.Second)
	ch, _ := f.svc.StartChallenge(ctx, "erin", "")
	admin := mfa.Principal{Username: "root", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	if err := f.svc.AdminResetAuthenticator(ctx, admin, "erin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 0)}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("challenge survived the reset: %v", err)
	}
}

// A switch refused by the email throttle keeps the old token good.
func TestSwitchChallengeThrottled(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "gus")
	if err := f.svc.BeginEmail(ctx, "gus", "gus@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyEmail(ctx, "gus", f.mail.LastCode("gus@example.com")); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(30 * time.Second)
	ch, _ := f.svc.StartChallenge(ctx, "gus", "gus@example.com")
	if _, err := f.svc.SwitchChallenge(ctx, ch.Token, mfa.Email, gusAddress); !errors.Is(err, mfa.ErrRateLimited) {
		t.Fatalf("switch within the resend interval: %v", err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 0)}); err != nil {
		t.Fatalf("old token after a refused switch: %v", err)
	}
	f.clock.Add(time.Minute)
	ch, _ = f.svc.StartChallenge(ctx, "gus", "gus@example.com")
	sw, err := f.svc.SwitchChallenge(ctx, ch.Token, mfa.Email, gusAddress)
	if err != nil || sw.Factor != mfa.Email {
		t.Fatalf("switch: %+v %v", sw, err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 1)}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("old token after a switch: %v", err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, sw.Token, mfa.Proof{Code: f.mail.LastCode("gus@example.com")}); err != nil {
		t.Fatalf("email code: %v", err)
	}
}

func gusAddress(context.Context, string) (string, error) { return "gus@example.com", nil }

package mfa_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/mfa/mfatest"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// ForgetUser removes everything of a deleted account: a new account with
// the same name inherits no enrollment, sign-in, recovery code, lockout
// or send throttle, and can enroll afresh.
func TestForgetUser(t *testing.T) {
	var mu sync.Mutex
	var ended []string
	f := newFixture(t, mfa.Config{EndSessions: func(_ context.Context, user string) {
		mu.Lock()
		defer mu.Unlock()
		ended = append(ended, user)
	}})
	ctx := context.Background()
	const u, addr, other = "olga", "olga@example.com", "peter"

	// Everything the kit keeps for a user: an authenticator, email,
	// recovery codes, a live sign-in and a locked factor.
	secret := f.enroll(t, u)
	if err := f.svc.BeginEmail(ctx, u, addr); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyEmail(ctx, u, f.mail.LastCode(addr)); err != nil {
		t.Fatal(err)
	}
	recovery, err := f.svc.GenerateRecoveryCodes(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := f.svc.StartChallenge(ctx, u, addr)
	if err != nil || ch.Status != mfa.ChallengeVerify {
		t.Fatalf("StartChallenge = %+v, %v", ch, err)
	}
	for range f.svc.Config().MaxFailures {
		_ = f.svc.CheckAuthenticator(ctx, u, "000000")
	}
	if err := f.svc.CheckAuthenticator(ctx, u, f.code(secret, 0)); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("the fixture meant to lock the authenticator: %v", err)
	}
	f.enroll(t, other)
	if _, err := f.svc.GenerateRecoveryCodes(ctx, other); err != nil {
		t.Fatal(err)
	}

	sent := len(f.mail.Messages())
	if err := f.svc.ForgetUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if got := len(f.mail.Messages()); got != sent {
		t.Fatalf("ForgetUser sent %d emails, want none", got-sent)
	}
	if !f.events.Has(mfa.EventUserForgotten) {
		t.Fatalf("no %s event in %v", mfa.EventUserForgotten, f.events.Types())
	}
	mu.Lock()
	if len(ended) != 1 || ended[0] != u {
		t.Fatalf("EndSessions calls = %v, want [%s]", ended, u)
	}
	mu.Unlock()
	// Idempotent, and a user never seen is no error.
	if err := f.svc.ForgetUser(ctx, u); err != nil {
		t.Fatalf("forgetting twice: %v", err)
	}
	if err := f.svc.ForgetUser(ctx, "never-seen"); err != nil {
		t.Fatalf("forgetting an unknown user: %v", err)
	}
	if err := f.svc.ForgetUser(ctx, ""); !errors.Is(err, mfa.ErrInvalidUser) {
		t.Fatalf("forgetting an empty name: %v", err)
	}

	// A new account with the same name.
	st, err := f.svc.Status(ctx, u)
	if err != nil || len(st.Details) != 0 {
		t.Fatalf("status of the new account = %+v, %v, want no enrollment", st, err)
	}
	if n, err := f.svc.RecoveryCodesLeft(ctx, u); err != nil || n != 0 {
		t.Fatalf("the new account has %d recovery codes (%v)", n, err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Recovery, Code: recovery[0]}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("the old state token: %v, want ErrInvalidToken", err)
	}
	if err := f.svc.UseRecoveryCode(ctx, u, recovery[1]); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("an old recovery code: %v, want ErrInvalidCode", err)
	}
	// Fresh enrollments work at once: no lockout, no send throttle left.
	if err := f.svc.BeginEmail(ctx, u, addr); err != nil {
		t.Fatalf("BeginEmail right after ForgetUser: %v", err)
	}
	f.clock.Add(30 * time.Second)
	newSecret := f.enroll(t, u)
	if old := f.code(secret, 1); old != f.code(newSecret, 1) {
		if err := f.svc.CheckAuthenticator(ctx, u, old); !errors.Is(err, mfa.ErrInvalidCode) {
			t.Fatalf("the old authenticator: %v, want ErrInvalidCode", err)
		}
	}
	if err := f.svc.UseRecoveryCode(ctx, u, recovery[2]); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("an old recovery code after re-enrollment: %v, want ErrInvalidCode", err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Authenticator, Code: f.code(newSecret, 0)}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("the old state token after re-enrollment: %v, want ErrInvalidToken", err)
	}
	f.clock.Add(30 * time.Second)
	ch2, err := f.svc.StartChallenge(ctx, u, addr)
	if err != nil || ch2.Status != mfa.ChallengeVerify || ch2.Factor != mfa.Authenticator {
		t.Fatalf("a new sign-in = %+v, %v", ch2, err)
	}
	if res, err := f.svc.CompleteChallenge(ctx, ch2.Token, mfa.Proof{Code: f.code(newSecret, 0)}); err != nil || res.User != u {
		t.Fatalf("completing a new sign-in = %+v, %v", res, err)
	}

	// The other user is untouched.
	st, err = f.svc.Status(ctx, other)
	if err != nil || !st.Details[mfa.Authenticator].Verified {
		t.Fatalf("status of %s = %+v, %v", other, st, err)
	}
	if n, err := f.svc.RecoveryCodesLeft(ctx, other); err != nil || n != f.svc.Config().RecoveryCodes {
		t.Fatalf("%s has %d recovery codes (%v)", other, n, err)
	}
}

// forgetFailing is a store whose ForgetUser fails.
type forgetFailing struct{ storage.Store }

func (forgetFailing) ForgetUser(context.Context, string, []string) error {
	return errors.New("store down")
}

// A store failure is an internal error, with no event and no EndSessions.
func TestForgetUserStoreFailure(t *testing.T) {
	ev := &mfatest.Recorder{}
	called := false
	svc, err := mfa.New(forgetFailing{memstore.New()}, &mailertest.Recorder{}, mfa.NewRandomKeyring(),
		mfa.Config{Events: ev, EndSessions: func(context.Context, string) { called = true }})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ForgetUser(context.Background(), "quinn"); !errors.Is(err, mfa.ErrInternal) {
		t.Fatalf("ForgetUser on a failing store: %v, want ErrInternal", err)
	}
	if ev.Has(mfa.EventUserForgotten) || called {
		t.Fatal("a failed ForgetUser reported success (event or EndSessions)")
	}
}

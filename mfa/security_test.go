package mfa_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// lastCode returns the code of the last email sent to to.
func lastCode(t *testing.T, rec *mailertest.Recorder, to string) string {
	t.Helper()
	code := rec.LastCode(to)
	if code == "" {
		t.Fatalf("no code was mailed to %s", to)
	}
	return code
}

// S22: of 100 concurrent wrong codes at most MaxFailures are compared
// (counted by the failure events), and a right code inside the burst is
// refused once the limit is reached.
func TestConcurrentChecksAreBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "burst")
	f.clock.Add(30 * time.Second)
	right := f.code(secret, 0)
	var wg sync.WaitGroup
	var locked atomic.Int32
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := wrongCode(f, secret, i)
			if err := f.svc.CheckAuthenticator(ctx, "burst", code); errors.Is(err, mfa.ErrLocked) {
				locked.Add(1)
			}
		}()
	}
	wg.Wait()
	compared := 0
	for _, e := range f.events.Events() {
		if e.User == "burst" && e.Type == mfa.EventFailure {
			compared++
		}
	}
	if compared != 5 {
		t.Fatalf("%d wrong codes were compared, want exactly 5", compared)
	}
	if locked.Load() < 95 {
		t.Fatalf("%d of 100 were refused as locked", locked.Load())
	}
	if err := f.svc.CheckAuthenticator(ctx, "burst", right); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("right code after the burst: %v, want locked", err)
	}
}

// wrongCode returns a code that does not match secret now (no chance hit).
func wrongCode(f *fixture, secret []byte, i int) string {
	p := f.svc.TOTP()
	for off := int64(10 + i); ; off++ {
		c := p.Code(secret, p.Step(f.clock.Now())+off)
		if _, ok := p.Match(secret, c, f.clock.Now()); !ok {
			return c
		}
	}
}

// S24: an admin reset removes recovery codes and in-flight sign-ins, ends
// the user's sessions and emits sessions_ended; after a fresh enrollment an
// old recovery code does not sign in.
func TestAdminResetClosesEveryWayBack(t *testing.T) {
	t.Parallel()
	var ended []string
	var mu sync.Mutex
	f := newFixture(t, mfa.Config{EndSessions: func(_ context.Context, user string) {
		mu.Lock()
		defer mu.Unlock()
		ended = append(ended, user)
	}})
	ctx := context.Background()
	f.enroll(t, "rita")
	codes, err := f.svc.GenerateRecoveryCodes(ctx, "rita")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := f.svc.StartChallenge(ctx, "rita", "")
	if err != nil {
		t.Fatal(err)
	}
	admin := mfa.Principal{Username: "boss", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	if err := f.svc.AdminResetAuthenticator(ctx, admin, "rita"); err != nil {
		t.Fatal(err)
	}
	if len(ended) != 1 || ended[0] != "rita" || !f.events.Has(mfa.EventSessionsEnded) {
		t.Fatalf("sessions not ended: %v", ended)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, "rita"); n != 0 {
		t.Fatalf("%d recovery codes survived the admin reset", n)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Recovery, Code: codes[0]}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("in-flight sign-in after reset: %v", err)
	}
	f.clock.Add(time.Minute)
	f.enroll(t, "rita")
	ch, _ = f.svc.StartChallenge(ctx, "rita", "")
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Recovery, Code: codes[1]}); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("old recovery code after admin reset and re-enrollment: %v", err)
	}
}

// S24: a self reset that leaves a verified factor keeps the recovery codes
// and the sessions; one that removes the last factor closes everything.
func TestSelfResetOfLastFactor(t *testing.T) {
	t.Parallel()
	ended := 0
	f := newFixture(t, mfa.Config{EndSessions: func(context.Context, string) { ended++ }})
	ctx := context.Background()
	secret := f.enroll(t, "sam")
	if _, err := f.svc.GenerateRecoveryCodes(ctx, "sam"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(30 * time.Second)
	if err := f.svc.ResetAuthenticator(ctx, "sam", mfa.Proof{Factor: mfa.Authenticator, Code: f.code(secret, 0)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, "sam"); n != 0 || ended != 1 {
		t.Fatalf("last factor removed: %d recovery codes left, sessions ended %d times", n, ended)
	}

	// With email still verified, the authenticator's reset keeps them.
	f.clock.Add(time.Minute)
	secret = f.enroll(t, "sam")
	if err := f.svc.BeginEmail(ctx, "sam", "sam@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyEmail(ctx, "sam", lastCode(t, f.mail, "sam@example.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GenerateRecoveryCodes(ctx, "sam"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(30 * time.Second)
	if err := f.svc.ResetAuthenticator(ctx, "sam", mfa.Proof{Factor: mfa.Authenticator, Code: f.code(secret, 0)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, "sam"); n == 0 || ended != 1 {
		t.Fatalf("email still held: %d recovery codes left, sessions ended %d times", n, ended)
	}
}

// S25: recovery codes, email codes (enrollment and sign-in), state tokens
// and sealed secrets made before a key rotation work after it.
func TestRotationInTheMiddleOfEveryFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, rec := memstore.New(), &mailertest.Recorder{}
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	k1, k2 := key32(), key32()
	svcWith := func(current string, keys map[string][]byte) *mfa.Service {
		ring, err := mfa.NewKeyring(current, keys)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := mfa.New(store, rec, ring, mfa.Config{Now: clk.Now, EmailResendInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	before := svcWith("k1", map[string][]byte{"k1": k1})
	after := svcWith("k2", map[string][]byte{"k1": k1, "k2": k2})

	// Email enrollment begun before, verified after.
	if err := before.BeginEmail(ctx, "eve", "eve@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := after.VerifyEmail(ctx, "eve", lastCode(t, rec, "eve@example.com")); err != nil {
		t.Fatalf("email enrollment code across rotation: %v", err)
	}
	// Recovery codes made before, used after.
	codes, err := before.GenerateRecoveryCodes(ctx, "eve")
	if err != nil {
		t.Fatal(err)
	}
	if err := after.UseRecoveryCode(ctx, "eve", codes[0]); err != nil {
		t.Fatalf("recovery code across rotation: %v", err)
	}
	// A sign-in begun before (state token and email code), finished after.
	clk.Add(2 * time.Second)
	ch, err := before.StartChallenge(ctx, "eve", "eve@example.com")
	if err != nil {
		t.Fatal(err)
	}
	res, err := after.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: lastCode(t, rec, "eve@example.com")})
	if err != nil || res.User != "eve" {
		t.Fatalf("sign-in across rotation: %+v, %v", res, err)
	}
	// A wrong code is still wrong under every key, and counted once.
	clk.Add(2 * time.Second)
	ch, _ = before.StartChallenge(ctx, "eve", "eve@example.com")
	right := lastCode(t, rec, "eve@example.com")
	wrong := "000000"
	if wrong == right {
		wrong = "000001"
	}
	if _, err := after.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: wrong}); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("wrong code across rotation: %v", err)
	}
	if a, _ := store.Attempts(ctx, "eve", mfa.Email); a.Failures != 1 {
		t.Fatalf("a wrong code counted %d times", a.Failures)
	}
	if _, err := after.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: right}); err != nil {
		t.Fatalf("right code after a wrong one across rotation: %v", err)
	}
}

// S26: a switch with a dead state token is refused before anything about
// the user is looked up.
func TestSwitchChecksTokenFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	f.enroll(t, "tom")
	ch, _ := f.svc.StartChallenge(ctx, "tom", "")
	looked := 0
	lookup := func(context.Context, string) (string, error) { looked++; return "tom@example.com", nil }
	forged := ch.Token[:len(ch.Token)-4] + "AAAA"
	if _, err := f.svc.SwitchChallenge(ctx, forged, mfa.Email, lookup); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("forged token: %v", err)
	}
	if looked != 0 {
		t.Fatal("the user was looked up for a forged token")
	}
}

// S27: lock durations saturate instead of overflowing, whatever the count.
func TestLockDurationsSaturate(t *testing.T) {
	t.Parallel()
	p := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
	for n := 5; n < 200; n++ {
		if d := p.LockFor(n); d < time.Minute || d > time.Hour {
			t.Fatalf("LockFor(%d) = %s", n, d)
		}
	}
	if d := p.LockFor(1 << 40); d != time.Hour {
		t.Fatalf("LockFor(huge) = %s", d)
	}
	f := newFixture(t, mfa.Config{LockoutBase: time.Minute, LockoutMax: 24 * time.Hour})
	ctx := context.Background()
	secret := f.enroll(t, "lou")
	for i := range 60 {
		f.clock.Add(25 * time.Hour)
		err := f.svc.CheckAuthenticator(ctx, "lou", wrongCode(f, secret, i))
		if i >= 4 && !errors.Is(err, mfa.ErrLocked) {
			t.Fatalf("failure %d: %v, want a lock", i+1, err)
		}
	}
}

// S30: a sealed secret copied into a later enrollment of the same user
// does not open; secrets sealed by older versions open only when the host
// opts in, and are then resealed under the new binding.
func TestSealedSecretBoundToEnrollment(t *testing.T) {
	t.Parallel()
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "ann")
	old, _ := f.store.Enrollment(ctx, "ann", mfa.Authenticator)
	admin := mfa.Principal{Username: "boss", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	if err := f.svc.AdminResetAuthenticator(ctx, admin, "ann"); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	f.enroll(t, "ann")
	cur, _ := f.store.Enrollment(ctx, "ann", mfa.Authenticator)
	// Restore the old device's sealed secret into the new row.
	restored := cur
	restored.Verified, restored.Secret, restored.KeyID = false, old.Secret, old.KeyID
	restored.ExpiresAt = f.clock.Now().Add(time.Minute)
	f.store.DeleteEnrollment(ctx, "ann", mfa.Authenticator)
	f.store.BeginEnrollment(ctx, restored)
	f.store.ConfirmEnrollment(ctx, "ann", mfa.Authenticator, cur.ID, 0, f.clock.Now())
	f.clock.Add(30 * time.Second)
	err := f.svc.CheckAuthenticator(ctx, "ann", f.code(secret, 0))
	if err == nil || errors.Is(err, mfa.ErrInvalidCode) || !strings.Contains(err.Error(), "open secret") {
		t.Fatalf("old device's secret in a new enrollment: %v", err)
	}
}

// gateStore pauses the first ReserveAttempt after armed is set until gate
// closes.
type gateStore struct {
	storage.Store
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func (g *gateStore) ReserveAttempt(ctx context.Context, user string, f mfa.Factor, now time.Time, p storage.LockPolicy) (storage.Attempts, error) {
	if g.armed.Load() {
		g.once.Do(func() { close(g.entered); <-g.gate })
	}
	return g.Store.ReserveAttempt(ctx, user, f, now, p)
}

// S15, S24: a state token whose wrong code was being checked while an
// admin reset ran is not put back alive; after re-enrollment it cannot
// complete a sign-in with the new authenticator's code.
func TestResetDuringWrongCodeKillsToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := &gateStore{Store: memstore.New(), entered: make(chan struct{}), gate: make(chan struct{})}
	clk := &clock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)}
	svc, err := mfa.New(g, &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, clock: clk}
	secret := f.enroll(t, "vic")
	ch, err := svc.StartChallenge(ctx, "vic", "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	g.armed.Store(true)
	go func() {
		_, err := svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: wrongCode(f, secret, 0)})
		done <- err
	}()
	<-g.entered
	admin := mfa.Principal{Username: "boss", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	if err := svc.AdminResetAuthenticator(ctx, admin, "vic"); err != nil {
		t.Fatal(err)
	}
	close(g.gate)
	if err := <-done; !errors.Is(err, mfa.ErrInvalidCode) && !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("wrong code during the reset: %v", err)
	}
	clk.Add(time.Minute)
	secret = f.enroll(t, "vic")
	clk.Add(30 * time.Second)
	if _, err := svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: f.code(secret, 0)}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("the pre-reset token after re-enrollment: %v, want invalid token", err)
	}
}

// S26: a forged token naming a user whose real sign-in lapsed is answered
// like any unknown token; a real token past its expiry says expired.
func TestExpiredSignInIsNoOracle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	f.enroll(t, "olga")
	ch, _ := f.svc.StartChallenge(ctx, "olga", "")
	f.clock.Add(11 * time.Minute)
	forge := func(user string) string {
		exp := strconv.FormatInt(f.clock.Now().Add(5*time.Minute).Unix(), 10)
		return "v1." + base64.RawURLEncoding.EncodeToString([]byte(user)) + ".AUTHENTICATOR." + exp + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	}
	_, known := f.svc.CompleteChallenge(ctx, forge("olga"), mfa.Proof{Code: "123456"})
	_, unknown := f.svc.CompleteChallenge(ctx, forge("nobody"), mfa.Proof{Code: "123456"})
	if !errors.Is(known, mfa.ErrInvalidToken) || !errors.Is(unknown, mfa.ErrInvalidToken) {
		t.Fatalf("forged tokens: %v / %v, want invalid token for both", known, unknown)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: "123456"}); !errors.Is(err, mfa.ErrTokenExpired) {
		t.Fatalf("the real token after its expiry: %v", err)
	}
}

package mfa_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/mfa/mfatest"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	svc    *mfa.Service
	store  *memstore.Store
	mail   *mailertest.Recorder
	clock  *clock
	events *mfatest.Recorder
}

func newFixture(t *testing.T, cfg mfa.Config) *fixture {
	t.Helper()
	f := &fixture{store: memstore.New(), mail: &mailertest.Recorder{},
		clock:  &clock{now: time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)},
		events: &mfatest.Recorder{}}
	cfg.Now = f.clock.Now
	cfg.Events = f.events
	svc, err := mfa.New(f.store, f.mail, mfa.NewRandomKeyring(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

// enroll runs a whole authenticator enrollment and returns the secret.
func (f *fixture) enroll(t *testing.T, user string) []byte {
	t.Helper()
	key, err := f.svc.BeginAuthenticator(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := mfa.ParseKeyURI(key.URI)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyAuthenticator(context.Background(), user, f.code(secret, 0)); err != nil {
		t.Fatal(err)
	}
	return secret
}

// code returns the code of secret at the current step plus offset.
func (f *fixture) code(secret []byte, offset int64) string {
	p := f.svc.TOTP()
	return p.Code(secret, p.Step(f.clock.Now())+offset)
}

func TestConfigDefaults(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	c := f.svc.Config()
	if c.Issuer != "mfakit" || c.Digits != 6 || c.Period != 30*time.Second || c.Skew != 1 || c.SecretSize != 20 ||
		c.PendingTTL != 10*time.Minute || c.EmailCodeTTL != 10*time.Minute || c.EmailResendInterval != time.Minute ||
		c.MaxFailures != 5 || c.AdminRole != "ROLE_ADMIN_CUSTOMER" || len(c.Factors) != 2 {
		t.Fatalf("defaults = %+v", c)
	}
	for _, bad := range []mfa.Config{
		{SecretSize: 15},          // S4: never under 128 bits
		{MaxFailures: 101},        // S8: never more than 100
		{EmailCodeTTL: time.Hour}, // S10: at most 10 minutes
		{Digits: 7}, {Skew: 3}, {Period: 31500 * time.Millisecond},
		{Factors: []mfa.Factor{"SMS"}},
	} {
		if _, err := mfa.New(memstore.New(), &mailertest.Recorder{}, mfa.NewRandomKeyring(), bad); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
	if _, err := mfa.New(nil, &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{}); err == nil {
		t.Error("New accepted a nil store")
	}
}

// S4: secrets come from crypto/rand, 160 bits by default, and differ.
func TestSecretStrength(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 20 {
		key, err := f.svc.BeginAuthenticator(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		secret, _, err := mfa.ParseKeyURI(key.URI)
		if err != nil || len(secret) != 20 {
			t.Fatalf("secret %d: %d bytes, %v", i, len(secret), err)
		}
		if seen[key.Secret] {
			t.Fatal("a secret repeated")
		}
		seen[key.Secret] = true
	}
}

// S3: a code is accepted once; an older step after a newer one fails; the
// enrollment code consumes its step.
func TestSingleUse(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "alice")
	if err := f.svc.CheckAuthenticator(ctx, "alice", f.code(secret, 0)); !errors.Is(err, mfa.ErrCodeReused) {
		t.Fatalf("enrollment code reused at login: %v", err)
	}
	if !f.events.Has(mfa.EventReplay) {
		t.Fatal("S16: replay not reported as a replay")
	}
	f.clock.Add(30 * time.Second)
	if err := f.svc.CheckAuthenticator(ctx, "alice", f.code(secret, 0)); err != nil {
		t.Fatalf("next step: %v", err)
	}
	if err := f.svc.CheckAuthenticator(ctx, "alice", f.code(secret, 0)); !errors.Is(err, mfa.ErrCodeReused) {
		t.Fatalf("same code twice: %v", err)
	}
	if err := f.svc.CheckAuthenticator(ctx, "alice", f.code(secret, 1)); err != nil {
		t.Fatalf("T+1: %v", err)
	}
	if err := f.svc.CheckAuthenticator(ctx, "alice", f.code(secret, -1)); !errors.Is(err, mfa.ErrCodeReused) {
		t.Fatalf("older step after newer: %v", err)
	}
}

// S3: concurrent submissions of one code give exactly one success.
func TestSingleUseConcurrent(t *testing.T) {
	f := newFixture(t, mfa.Config{MaxFailures: 100})
	secret := f.enroll(t, "alice")
	f.clock.Add(30 * time.Second)
	code := f.code(secret, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, reused := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f.svc.CheckAuthenticator(context.Background(), "alice", code)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, mfa.ErrCodeReused):
				reused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || reused != 49 {
		t.Fatalf("ok=%d reused=%d, want 1 and 49", ok, reused)
	}
}

// S7: a pending enrollment expires, cannot satisfy a check, and never
// replaces a verified one.
func TestPendingEnrollment(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	key, err := f.svc.BeginAuthenticator(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	secret, _, _ := mfa.ParseKeyURI(key.URI)
	st, _ := f.svc.Status(ctx, "bob")
	if d, ok := st.Details[mfa.Authenticator]; !ok || d.Verified {
		t.Fatalf("pending status = %+v", st)
	}
	if err := f.svc.CheckAuthenticator(ctx, "bob", f.code(secret, 0)); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("pending factor satisfied a check: %v", err)
	}
	f.clock.Add(10*time.Minute + time.Second)
	if err := f.svc.VerifyAuthenticator(ctx, "bob", f.code(secret, 0)); !errors.Is(err, mfa.ErrEnrollmentExpired) {
		t.Fatalf("expired pending verified: %v", err)
	}
	st, _ = f.svc.Status(ctx, "bob")
	if len(st.Details) != 0 {
		t.Fatalf("expired pending still in status: %+v", st)
	}
	// A new QR replaces the pending secret: the old one no longer verifies.
	old, _ := f.svc.BeginAuthenticator(ctx, "bob")
	oldSecret, _, _ := mfa.ParseKeyURI(old.URI)
	newer, _ := f.svc.BeginAuthenticator(ctx, "bob")
	newSecret, _, _ := mfa.ParseKeyURI(newer.URI)
	if err := f.svc.VerifyAuthenticator(ctx, "bob", f.code(oldSecret, 0)); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("replaced secret verified: %v", err)
	}
	if err := f.svc.VerifyAuthenticator(ctx, "bob", f.code(newSecret, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BeginAuthenticator(ctx, "bob"); !errors.Is(err, mfa.ErrAlreadyEnrolled) {
		t.Fatalf("re-enrolling a verified factor: %v", err)
	}
	if err := f.svc.VerifyAuthenticator(ctx, "bob", f.code(newSecret, 1)); !errors.Is(err, mfa.ErrAlreadyEnrolled) {
		t.Fatalf("verifying twice: %v", err)
	}
	st, _ = f.svc.Status(ctx, "bob")
	if d := st.Details[mfa.Authenticator]; !d.Verified {
		t.Fatalf("status after verify = %+v", st)
	}
}

// S8: after 5 failures the factor locks, even a correct code is refused,
// the lockout backs off, and a success resets the count.
func TestLockout(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "carol")
	f.clock.Add(30 * time.Second)
	wrong := "000000"
	if wrong == f.code(secret, 0) || wrong == f.code(secret, 1) || wrong == f.code(secret, -1) {
		wrong = "111111"
	}
	for i := 1; i <= 4; i++ {
		if err := f.svc.CheckAuthenticator(ctx, "carol", wrong); !errors.Is(err, mfa.ErrInvalidCode) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	err := f.svc.CheckAuthenticator(ctx, "carol", wrong)
	var locked *mfa.LockedError
	if !errors.As(err, &locked) || !locked.Until.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("5th failure: %v", err)
	}
	if !f.events.Has(mfa.EventLockout) {
		t.Fatal("S16: no lockout event")
	}
	if err := f.svc.CheckAuthenticator(ctx, "carol", f.code(secret, 0)); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("correct code while locked: %v", err)
	}
	// After the lock, another failure locks again for twice as long.
	f.clock.Add(time.Minute)
	err = f.svc.CheckAuthenticator(ctx, "carol", wrong)
	if !errors.As(err, &locked) || !locked.Until.Equal(f.clock.Now().Add(2*time.Minute)) {
		t.Fatalf("6th failure: %v", err)
	}
	f.clock.Add(2 * time.Minute)
	if err := f.svc.CheckAuthenticator(ctx, "carol", f.code(secret, 0)); err != nil {
		t.Fatalf("correct code after lock: %v", err)
	}
	// The success reset the count: four more failures do not lock.
	for i := 0; i < 4; i++ {
		if err := f.svc.CheckAuthenticator(ctx, "carol", wrong); !errors.Is(err, mfa.ErrInvalidCode) {
			t.Fatalf("after reset, failure %d: %v", i, err)
		}
	}
}

// S9, S10: email codes are 6 digits, expire, are single use, a resend
// invalidates the earlier one, and sends are throttled.
func TestEmailEnrollment(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	const u, addr = "dave", "dave@example.com"
	if err := f.svc.BeginEmail(ctx, u, addr); err != nil {
		t.Fatal(err)
	}
	first := f.mail.LastCode(addr)
	if len(first) != 6 {
		t.Fatalf("code %q", first)
	}
	m, _ := f.mail.Last(addr)
	if !strings.Contains(m.HTML, first) || strings.Contains(m.Subject, first) {
		t.Fatalf("the code must be in the HTML part and never in the subject (S29): %q", m.Subject)
	}
	err := f.svc.BeginEmail(ctx, u, addr)
	var limited *mfa.RateLimitedError
	if !errors.As(err, &limited) || limited.RetryAfter != time.Minute {
		t.Fatalf("resend within a minute: %v", err)
	}
	f.clock.Add(time.Minute)
	if err := f.svc.BeginEmail(ctx, u, addr); err != nil {
		t.Fatal(err)
	}
	second := f.mail.LastCode(addr)
	if first != second {
		if err := f.svc.VerifyEmail(ctx, u, first); !errors.Is(err, mfa.ErrInvalidCode) {
			t.Fatalf("superseded code: %v", err)
		}
	}
	if err := f.svc.VerifyEmail(ctx, u, second); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyEmail(ctx, u, second); !errors.Is(err, mfa.ErrAlreadyEnrolled) {
		t.Fatalf("second use: %v", err)
	}
	st, _ := f.svc.Status(ctx, u)
	if !st.Details[mfa.Email].Verified {
		t.Fatalf("status = %+v", st)
	}

	// Expiry.
	const v, vaddr = "vic", "vic@example.com"
	if err := f.svc.BeginEmail(ctx, v, vaddr); err != nil {
		t.Fatal(err)
	}
	code := f.mail.LastCode(vaddr)
	f.clock.Add(10 * time.Minute)
	if err := f.svc.VerifyEmail(ctx, v, code); !errors.Is(err, mfa.ErrCodeExpired) {
		t.Fatalf("expired code: %v", err)
	}

	// Hourly cap.
	const w, waddr = "wendy", "wendy@example.com"
	for i := range 5 {
		if err := f.svc.BeginEmail(ctx, w, waddr); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		f.clock.Add(time.Minute)
	}
	if err := f.svc.BeginEmail(ctx, w, waddr); !errors.As(err, &limited) || limited.RetryAfter != 55*time.Minute {
		t.Fatalf("6th send in an hour: %v", err)
	}
	if got := len(f.mail.Messages()); got != 2+1+5 {
		t.Fatalf("%d messages sent", got)
	}
}

// S10: a failed delivery leaves no usable code behind.
func TestEmailDeliveryFailure(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	f.mail.SetErr(errors.New("smtp down"))
	if err := f.svc.BeginEmail(ctx, "erin", "erin@example.com"); !errors.Is(err, mfa.ErrMailUnavailable) {
		t.Fatalf("BeginEmail with a failing mailer: %v", err)
	}
	if err := f.store.ConsumeCode(ctx, "erin", "enroll-email", []byte("x"), f.clock.Now()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("undelivered code left behind: %v", err)
	}
	// The failed send does not hold back the next request.
	f.mail.SetErr(nil)
	if err := f.svc.BeginEmail(ctx, "erin", "erin@example.com"); err != nil {
		t.Fatalf("resend after a delivery failure: %v", err)
	}
}

// S11: AUTHENTICATOR is listed first, and a policy refuses email alone.
func TestEmailPolicy(t *testing.T) {
	f := newFixture(t, mfa.Config{Factors: []mfa.Factor{mfa.Email, mfa.Authenticator}, DisallowEmailOnly: true})
	ctx := context.Background()
	st, _ := f.svc.Status(ctx, "x")
	if len(st.Available) != 2 || st.Available[0] != mfa.Authenticator {
		t.Fatalf("Available = %v", st.Available)
	}
	if err := f.svc.BeginEmail(ctx, "x", "x@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.VerifyEmail(ctx, "x", f.mail.LastCode("x@example.com")); !errors.Is(err, mfa.ErrEmailOnly) {
		t.Fatalf("email as only factor: %v", err)
	}
	f.enroll(t, "x")
	if err := f.svc.VerifyEmail(ctx, "x", f.mail.LastCode("x@example.com")); err != nil {
		t.Fatalf("email as second factor: %v", err)
	}

	only := newFixture(t, mfa.Config{Factors: []mfa.Factor{mfa.Authenticator}})
	if err := only.svc.BeginEmail(ctx, "y", "y@example.com"); !errors.Is(err, mfa.ErrFactorDisabled) {
		t.Fatalf("disabled factor: %v", err)
	}
}

// S13: a self reset needs a current code; S14: admin reset needs the role.
func TestResets(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "frank")
	f.clock.Add(30 * time.Second)
	if err := f.svc.ResetAuthenticator(ctx, "frank", mfa.Proof{Factor: mfa.Authenticator, Code: "12"}); !errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("reset with a bad code: %v", err)
	}
	if err := f.svc.ResetAuthenticator(ctx, "frank", mfa.Proof{Factor: "PASSWORD", Code: "hunter2"}); !errors.Is(err, mfa.ErrUnsupportedProof) {
		t.Fatalf("reset with a password: %v", err)
	}
	if err := f.svc.ResetAuthenticator(ctx, "frank", mfa.Proof{Factor: mfa.Authenticator, Code: f.code(secret, 0)}); err != nil {
		t.Fatal(err)
	}
	if !f.events.Has(mfa.EventSelfReset) {
		t.Fatal("S16: no self_reset event")
	}
	st, _ := f.svc.Status(ctx, "frank")
	if len(st.Details) != 0 {
		t.Fatalf("status after reset = %+v", st)
	}
	if err := f.svc.ResetAuthenticator(ctx, "frank", mfa.Proof{Factor: mfa.Authenticator, Code: f.code(secret, 1)}); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("reset without enrollment: %v", err)
	}

	f.enroll(t, "gina")
	user := mfa.Principal{Username: "hank", Roles: []string{"ROLE_USER"}}
	if err := f.svc.AdminResetAuthenticator(ctx, user, "gina"); !errors.Is(err, mfa.ErrForbidden) {
		t.Fatalf("reset without admin role: %v", err)
	}
	admin := mfa.Principal{Username: "root", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	ctx = mfa.WithRequestInfo(ctx, mfa.RequestInfo{ClientIP: "192.0.2.7"})
	for range 2 { // idempotent
		if err := f.svc.AdminResetAuthenticator(ctx, admin, "gina"); err != nil {
			t.Fatal(err)
		}
	}
	var last mfa.Event
	for _, e := range f.events.Events() {
		if e.Type == mfa.EventAdminReset {
			last = e
		}
	}
	if last.Type != mfa.EventAdminReset || last.Actor != "root" || last.User != "gina" || last.ClientIP != "192.0.2.7" || last.Time.IsZero() {
		t.Fatalf("S14/S16 admin event = %+v", last)
	}
}

// S16: each step of the journey emits its event, with no code in it.
func TestEventsCarryNoSecrets(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	secret := f.enroll(t, "ivy")
	_ = f.svc.CheckAuthenticator(ctx, "ivy", "000000")
	want := []mfa.EventType{mfa.EventEnrollStarted, mfa.EventEnrollVerified}
	got := f.events.Types()
	if len(got) < 3 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("events = %v", got)
	}
	code := f.code(secret, 0)
	for _, ev := range f.events.Events() {
		if strings.Contains(ev.Reason, code) {
			t.Fatal("an event carries a code")
		}
	}
}

func TestInvalidUsers(t *testing.T) {
	f := newFixture(t, mfa.Config{})
	ctx := context.Background()
	for _, u := range []string{"", strings.Repeat("x", 321), "\xff\xfe"} {
		if _, err := f.svc.Status(ctx, u); !errors.Is(err, mfa.ErrInvalidUser) {
			t.Errorf("Status(%q): %v", u, err)
		}
		if _, err := f.svc.BeginAuthenticator(ctx, u); !errors.Is(err, mfa.ErrInvalidUser) {
			t.Errorf("BeginAuthenticator(%q): %v", u, err)
		}
	}
}

package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// forgetPurposes are the code purposes the ForgetUser case fills: the
// domain's own and one the Store has never heard of.
var forgetPurposes = []string{"login", "login-email", "enroll-email", "host/custom purpose ü"}

// forgetFactors are the factors whose failure state the case fills.
var forgetFactors = []storage.Factor{storage.Authenticator, storage.Email, storage.Recovery}

// forgetSend throttles to one send an hour, so a second send waits
// unless the state was forgotten.
var forgetSend = storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 1}

// forgetFixture is everything the case stores for one user.
type forgetFixture struct {
	user     string
	sendKeys []string
	enrolled []storage.Enrollment
	attempts map[storage.Factor]storage.Attempts
	codes    map[string][]byte // purpose → hash
	recovery [][]byte
	// creds are the user's WebAuthn credentials, on a CredentialStore.
	creds []storage.Credential
}

// fillUser stores for user a verified authenticator, a pending email
// enrollment, codes of every forgetPurposes (and a consumed one), failure
// state of every forgetFactors (the authenticator locked), recovery codes,
// a send reservation on each of its send keys and, on a CredentialStore,
// two WebAuthn credentials (one used).
func fillUser(t *testing.T, s storage.Store, user string) forgetFixture {
	t.Helper()
	ctx := context.Background()
	fx := forgetFixture{user: user, sendKeys: []string{"email:" + user, "sms:" + user},
		attempts: map[storage.Factor]storage.Attempts{}, codes: map[string][]byte{}}
	fx.enrolled = append(fx.enrolled, enroll(t, s, user, storage.Authenticator, 7))
	e := pending(user, storage.Email, "pending-"+user)
	must(t, s.BeginEnrollment(ctx, e))
	fx.enrolled = append(fx.enrolled, e)

	exp := base.Add(10 * time.Minute)
	for i, p := range forgetPurposes {
		h := bytes.Repeat([]byte{byte(i + 1)}, 32)
		must(t, s.PutCode(ctx, storage.Code{User: user, Purpose: p, Hash: h, ExpiresAt: exp}))
		fx.codes[p] = h
	}
	used := bytes.Repeat([]byte{0xee}, 32)
	must(t, s.PutCode(ctx, storage.Code{User: user, Purpose: "used", Hash: used, ExpiresAt: exp}))
	must(t, s.ConsumeCode(ctx, user, "used", used, base))

	for i, f := range forgetFactors {
		var a storage.Attempts
		for j := 0; j <= i; j++ { // 1, 2 and 3 checks: the third locks
			a = reserve(t, s, user, f, base.Add(time.Duration(j)*time.Second), policy)
		}
		fx.attempts[f] = a
	}
	if fx.attempts[storage.Recovery].LockedUntil.IsZero() {
		t.Fatal("the fixture meant to lock RECOVERY did not")
	}

	fx.recovery = [][]byte{bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0xa2}, 32), bytes.Repeat([]byte{0xa3}, 32)}
	must(t, s.ReplaceRecoveryCodes(ctx, user, fx.recovery))

	for _, k := range fx.sendKeys {
		if wait, err := s.ReserveSend(ctx, k, base, forgetSend); err != nil || wait != 0 {
			t.Fatalf("ReserveSend(%q) = %v, %v", k, wait, err)
		}
	}

	if cs, ok := s.(storage.CredentialStore); ok {
		for i := range 2 {
			c := storage.Credential{User: user, ID: []byte(fmt.Sprintf("cred-%d-%s", i, user)), Name: "key",
				Data: []byte{byte(i)}, SignCount: 3, CreatedAt: base.Add(time.Duration(i) * time.Second)}
			must(t, cs.AddCredential(ctx, c))
			fx.creds = append(fx.creds, c)
		}
		c := &fx.creds[0]
		c.SignCount, c.Data, c.LastUsedAt = 4, []byte("used"), base.Add(time.Minute)
		must(t, cs.UseCredential(ctx, user, c.ID, c.SignCount, c.Data, c.LastUsedAt))
	}
	return fx
}

// expectForgotten checks that every read of fx.user answers as for a user
// never seen, and that its send keys are free again.
func expectForgotten(t *testing.T, s storage.Store, fx forgetFixture) {
	t.Helper()
	ctx := context.Background()
	u := fx.user
	es, err := s.Enrollments(ctx, u)
	must(t, err)
	if len(es) != 0 {
		t.Fatalf("Enrollments(%q) after ForgetUser = %+v", u, es)
	}
	for _, f := range []storage.Factor{storage.Authenticator, storage.Email} {
		_, err := s.Enrollment(ctx, u, f)
		wantErr(t, err, storage.ErrNotFound)
	}
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 1<<40), storage.ErrNotFound)
	for p, h := range fx.codes {
		if err := s.ConsumeCode(ctx, u, p, h, base); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("ConsumeCode(%q, %q) after ForgetUser = %v, want ErrNotFound", u, p, err)
		}
	}
	for _, f := range forgetFactors {
		sameAttempts(t, "Attempts("+u+", "+string(f)+") after ForgetUser", stored(t, s, u, f), storage.Attempts{})
	}
	n, err := s.RecoveryCodesLeft(ctx, u)
	must(t, err)
	if n != 0 {
		t.Fatalf("RecoveryCodesLeft(%q) after ForgetUser = %d", u, n)
	}
	for _, h := range fx.recovery {
		wantErr(t, s.UseRecoveryCode(ctx, u, h), storage.ErrNotFound)
	}
	for _, k := range fx.sendKeys {
		if wait, err := s.ReserveSend(ctx, k, base.Add(time.Second), forgetSend); err != nil || wait != 0 {
			t.Fatalf("ReserveSend(%q) after ForgetUser waits %v (%v), want a send at once", k, wait, err)
		}
	}
	if cs, ok := s.(storage.CredentialStore); ok {
		expectCredentials(t, cs, u)
		for _, c := range fx.creds {
			wantErr(t, cs.UseCredential(ctx, u, c.ID, c.SignCount+1, nil, base), storage.ErrNotFound)
			if ok, err := cs.DeleteCredential(ctx, u, c.ID); err != nil || ok {
				t.Fatalf("DeleteCredential(%q, %q) after ForgetUser = %v, %v", u, c.ID, ok, err)
			}
		}
	}
}

// expectIntact checks that every record fillUser stored for fx.user is
// still there. It uses the codes and recovery codes up.
func expectIntact(t *testing.T, s storage.Store, fx forgetFixture) {
	t.Helper()
	ctx := context.Background()
	u := fx.user
	es, err := s.Enrollments(ctx, u)
	must(t, err)
	if len(es) != len(fx.enrolled) {
		t.Fatalf("Enrollments(%q) = %d records, want %d", u, len(es), len(fx.enrolled))
	}
	for i := range es {
		sameEnrollment(t, es[i], fx.enrolled[i])
	}
	for _, f := range forgetFactors {
		sameAttempts(t, "Attempts("+u+", "+string(f)+") of a user not forgotten", stored(t, s, u, f), fx.attempts[f])
	}
	n, err := s.RecoveryCodesLeft(ctx, u)
	must(t, err)
	if n != len(fx.recovery) {
		t.Fatalf("RecoveryCodesLeft(%q) = %d, want %d", u, n, len(fx.recovery))
	}
	if cs, ok := s.(storage.CredentialStore); ok {
		expectCredentials(t, cs, u, fx.creds...)
	}
	for _, k := range fx.sendKeys {
		if wait, err := s.ReserveSend(ctx, k, base.Add(time.Second), forgetSend); err != nil || wait == 0 {
			t.Fatalf("ReserveSend(%q) of a key not forgotten = %v, %v, want a wait", k, wait, err)
		}
	}
	for p, h := range fx.codes {
		must(t, s.ConsumeCode(ctx, u, p, h, base))
	}
	for _, h := range fx.recovery {
		must(t, s.UseRecoveryCode(ctx, u, h))
	}
}

// testForgetUser fills everything for three users, forgets one, and
// checks that it is gone and the others, one of them a near-identical
// name, are whole.
func testForgetUser(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	gone := fillUser(t, s, "forget-gone")
	kept := fillUser(t, s, "forget-kept")
	near := fillUser(t, s, "forget-gone-2") // the forgotten name is a prefix of it

	// A cancelled call fails and removes nothing.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.ForgetUser(cancelled, gone.user, gone.sendKeys); err == nil {
		t.Fatal("ForgetUser with a cancelled context returned nil")
	}
	if n, err := s.RecoveryCodesLeft(ctx, gone.user); err != nil || n != len(gone.recovery) {
		t.Fatalf("a cancelled ForgetUser removed recovery codes: %d left (%v)", n, err)
	}
	if _, err := s.Enrollment(ctx, gone.user, storage.Authenticator); err != nil {
		t.Fatalf("a cancelled ForgetUser removed the enrollment: %v", err)
	}
	if cs, ok := s.(storage.CredentialStore); ok {
		expectCredentials(t, cs, gone.user, gone.creds...)
	}

	must(t, s.ForgetUser(ctx, gone.user, gone.sendKeys))
	expectForgotten(t, s, gone)
	// Idempotent: twice, and for a user the store never saw.
	must(t, s.ForgetUser(ctx, gone.user, gone.sendKeys))
	must(t, s.ForgetUser(ctx, "forget-never-seen", []string{"email:forget-never-seen"}))
	must(t, s.ForgetUser(ctx, "forget-never-seen", nil))
	expectForgotten(t, s, forgetFixture{user: gone.user, codes: gone.codes, recovery: gone.recovery, creds: gone.creds})

	// The forgotten credentials' IDs are free again, for any user.
	if cs, ok := s.(storage.CredentialStore); ok {
		for i, c := range gone.creds {
			c.User = "forget-new-owner"
			must(t, cs.AddCredential(ctx, c))
			gone.creds[i] = c
		}
		expectCredentials(t, cs, "forget-new-owner", gone.creds...)
	}

	// The name starts afresh: a new enrollment is pending, not verified,
	// and can be verified.
	fresh := pending(gone.user, storage.Authenticator, "fresh")
	must(t, s.BeginEnrollment(ctx, fresh))
	got, err := s.Enrollment(ctx, gone.user, storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, fresh)
	must(t, s.ConfirmEnrollment(ctx, gone.user, storage.Authenticator, "fresh", 1, base))
	must(t, s.AcceptStep(ctx, gone.user, storage.Authenticator, 2))

	expectIntact(t, s, kept)
	expectIntact(t, s, near)
}

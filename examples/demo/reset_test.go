package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/mfa/mfatest"
)

// startDemoEvents is startDemo with the audit events going to the
// returned log.
func startDemoEvents(t *testing.T, args ...string) (*demo, *mfatest.Recorder) {
	t.Helper()
	args = append([]string{"-db", filepath.Join(t.TempDir(), "demo.db")}, args...)
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := &mfatest.Recorder{}
	o.events = log
	out := &syncBuffer{}
	a, err := newApp(o, out)
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{t: t, srv: httptest.NewServer(a.Handler()), out: out, app: a}
	t.Cleanup(d.stop)
	return d, log
}

// enrolledAlice enrolls alice's authenticator on a password-only token
// and signs her in with it. It returns both tokens: the second carries an
// MFA time, so it passes step-up.
func enrolledAlice(t *testing.T, d *demo) (password, withMFA string) {
	t.Helper()
	password = d.login("alice@example.com", "alice-password")
	status, body := d.call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", password, "", "Accept", "application/json")
	var qr struct{ OTPAuthURL string }
	if json.Unmarshal(body, &qr); status != 200 || qr.OTPAuthURL == "" {
		t.Fatalf("QR: %d %s", status, body)
	}
	// The enrollment spends this step's code; the sign-in uses the next.
	if status, body = d.call("PUT", "/users/mfa/verifyQRCodeEnroll", password, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, codeAt(t, qr.OTPAuthURL, 0))); status != 200 {
		t.Fatalf("verify: %d %s", status, body)
	}
	st := d.challenge("alice@example.com", "alice-password")
	status, out := d.complete(st["token"].(string), codeAt(t, qr.OTPAuthURL, 1))
	if withMFA, _ = out["access_token"].(string); status != 200 || withMFA == "" {
		t.Fatalf("MFA sign-in: %d %v", status, out)
	}
	return password, withMFA
}

// recoveryCodes makes a set of recovery codes, which needs step-up.
func recoveryCodes(t *testing.T, d *demo, withMFA string) []string {
	t.Helper()
	status, body := d.call("POST", "/oauth/users/mfa/recoveryCodes", withMFA, "")
	var rc struct{ RecoveryCodes []string }
	if json.Unmarshal(body, &rc); status != 200 || len(rc.RecoveryCodes) == 0 {
		t.Fatalf("recovery codes: %d %s", status, body)
	}
	return rc.RecoveryCodes
}

// assertEnded checks that none of tokens works any more, neither for a
// plain call nor for step-up, and that a new sign-in does.
func assertEnded(t *testing.T, d *demo, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if status, body := d.call("GET", "/oauth/users/mfaDetails", tok, ""); status != 401 {
			t.Fatalf("a token from before the reset: mfaDetails %d %s", status, body)
		}
		if status, body := d.call("POST", "/oauth/users/mfa/recoveryCodes", tok, ""); status != 401 {
			t.Fatalf("a token from before the reset: step-up %d %s", status, body)
		}
	}
	fresh := d.login("alice@example.com", "alice-password") // no factor left: password only
	if status, body := d.call("GET", "/oauth/users/mfaDetails", fresh, ""); status != 200 || !strings.Contains(string(body), `"details":{}`) {
		t.Fatalf("a sign-in after the reset: %d %s", status, body)
	}
	// The new session has not passed MFA, and alice has no factor left to
	// pass it with: a step-up tells her to set one up first
	// (httpx.StepUpEnroll, the default).
	if status, body := d.call("POST", "/oauth/users/mfa/recoveryCodes", fresh, ""); status != 403 || !strings.Contains(string(body), "enrollment_required") {
		t.Fatalf("step-up on a sign-in after the reset: %d %s", status, body)
	}
}

// An admin reset ends every session of the user (S24): her tokens from
// before it, with or without MFA, stop working; the admin's do not.
func TestDemoAdminResetEndsSessions(t *testing.T) {
	d := startDemo(t, "-db", "")
	password, withMFA := enrolledAlice(t, d)
	recoveryCodes(t, d, withMFA) // the MFA session passes step-up
	admin := d.login("admin@example.com", "admin-password")
	if status, body := d.call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", admin, ""); status != 200 {
		t.Fatalf("admin reset: %d %s", status, body)
	}
	assertEnded(t, d, password, withMFA)
	if status, body := d.call("GET", "/oauth/users/mfaDetails", admin, ""); status != 200 {
		t.Fatalf("the admin's own session: %d %s", status, body)
	}
}

// A reset by the user that removes her last verified factor ends her
// sessions too (S24), whether made with her token or, under the client
// credentials, with the state token of the password step (S23).
func TestDemoLastFactorResetEndsSessions(t *testing.T) {
	t.Run("bearer", func(t *testing.T) {
		d := startDemo(t, "-db", "")
		password, withMFA := enrolledAlice(t, d)
		codes := recoveryCodes(t, d, withMFA)
		if status, body := d.call("POST", "/users/mfa/resetMyQRCodeEnroll", withMFA, fmt.Sprintf(`{"mfatype":"RECOVERY","totp":%q}`, codes[0])); status != 200 {
			t.Fatalf("self reset: %d %s", status, body)
		}
		assertEnded(t, d, password, withMFA)
	})
	t.Run("state token", func(t *testing.T) {
		d := startDemo(t, "-db", "")
		password, withMFA := enrolledAlice(t, d)
		codes := recoveryCodes(t, d, withMFA)
		// A bare username under client credentials never resets (S23).
		if status, body := d.basic("POST", "/users/mfa/resetMyQRCodeEnroll", fmt.Sprintf(`{"username":"alice@example.com","mfatype":"RECOVERY","totp":%q}`, codes[0])); status != 400 {
			t.Fatalf("username-only reset: %d %s", status, body)
		}
		if status, body := d.call("GET", "/oauth/users/mfaDetails", withMFA, ""); status != 200 || !strings.Contains(string(body), `"AUTHENTICATOR":{"verified":true}`) {
			t.Fatalf("after a refused reset: %d %s", status, body)
		}
		st := d.challenge("alice@example.com", "alice-password")
		if status, body := d.basic("POST", "/users/mfa/resetMyQRCodeEnroll", fmt.Sprintf(`{"stateToken":%q,"mfatype":"RECOVERY","totp":%q}`, st["token"], codes[0])); status != 200 {
			t.Fatalf("lost-phone reset: %d %s", status, body)
		}
		assertEnded(t, d, password, withMFA)
	})
}

// A self reset that leaves a verified factor keeps the sessions; the kit
// calls EndSessions only when no way back is left.
func TestDemoResetKeepingAFactorKeepsSessions(t *testing.T) {
	d := startDemo(t, "-db", "", "-email-interval", "1ms")
	password, withMFA := enrolledAlice(t, d)
	if status, body := d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", withMFA, ""); status != 200 {
		t.Fatalf("enrollEmail: %d %s", status, body)
	}
	if status, body := d.call("PUT", "/oauth/users/mfa/verifyEmail", withMFA, fmt.Sprintf(`{"mfatype":"EMAIL","totp":%q}`, d.lastPrintedCode())); status != 200 {
		t.Fatalf("verifyEmail: %d %s", status, body)
	}
	codes := recoveryCodes(t, d, withMFA)
	if status, body := d.call("POST", "/users/mfa/resetMyQRCodeEnroll", withMFA, fmt.Sprintf(`{"mfatype":"RECOVERY","totp":%q}`, codes[0])); status != 200 {
		t.Fatalf("self reset: %d %s", status, body)
	}
	for _, tok := range []string{password, withMFA} {
		if status, body := d.call("GET", "/oauth/users/mfaDetails", tok, ""); status != 200 || !strings.Contains(string(body), `"EMAIL":{"verified":true}`) {
			t.Fatalf("a session after a reset that kept EMAIL: %d %s", status, body)
		}
	}
}

// A sign-in whose checks ran before the user's sessions were ended does
// not count, even when its token is issued after: the code it passed was
// checked before the reset.
func TestIdentityEndSessionsRace(t *testing.T) {
	users, _ := parseUsers(defaultUsers)
	id := newIdentity(users, nil)
	now := time.Now()
	id.now = func() time.Time { return now }
	before := now
	old, _ := id.issue("alice@example.com", before, before)
	admin, _ := id.issue("admin@example.com", before, before)

	now = now.Add(time.Second)
	id.endSessions(context.Background(), "alice@example.com")
	id.endSessions(context.Background(), "nobody@example.com") // unknown: nothing to end, nothing kept
	if len(id.ended) != 1 {
		t.Fatalf("ended = %v", id.ended)
	}
	late, _ := id.issue("alice@example.com", before, before) // began before the reset, issued after

	now = now.Add(time.Second)
	fresh, _ := id.issue("alice@example.com", now, time.Time{})
	for _, c := range []struct {
		name, token string
		works       bool
	}{{"issued before", old, false}, {"began before, issued after", late, false},
		{"another user's", admin, true}, {"began after", fresh, true}} {
		if _, err := id.AuthenticateToken(context.Background(), c.token); (err == nil) != c.works {
			t.Errorf("%s the reset: works = %v, want %v", c.name, err == nil, c.works)
		}
	}
}

// The audit events of a sign-in carry the client's address, as the kit's
// own routes' do: the email code sent by the password grant (the demo
// passes the request info itself) and a wrong code at the state_token
// grant (httpx's StateTokenGrant adds it).
func TestDemoSignInEventsCarryClientIP(t *testing.T) {
	d, log := startDemoEvents(t, "-db", "", "-email-interval", "1ms")
	alice := d.login("alice@example.com", "alice-password")
	if status, body := d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", alice, ""); status != 200 {
		t.Fatalf("enrollEmail: %d %s", status, body)
	}
	if status, body := d.call("PUT", "/oauth/users/mfa/verifyEmail", alice, fmt.Sprintf(`{"mfatype":"EMAIL","totp":%q}`, d.lastPrintedCode())); status != 200 {
		t.Fatalf("verifyEmail: %d %s", status, body)
	}
	log.Take()
	time.Sleep(10 * time.Millisecond) // past -email-interval: the sign-in sends a code too

	status, out := d.grant(url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"alice-password"}})
	st, _ := out["state_token"].(map[string]any)
	if status != 200 || st["mfaType"] != "EMAIL" {
		t.Fatalf("password grant: %d %v", status, out)
	}
	wrong := "000000"
	if d.lastPrintedCode() == wrong {
		wrong = "000001"
	}
	if status, out = d.complete(st["token"].(string), wrong); status != 400 || out["code"] != "invalid_code" {
		t.Fatalf("wrong code: %d %v", status, out)
	}

	seen := map[mfa.EventType]bool{}
	for _, e := range log.Take() {
		seen[e.Type] = true
		if e.ClientIP != "127.0.0.1" {
			t.Errorf("%s event of the sign-in: ClientIP %q, want 127.0.0.1", e.Type, e.ClientIP)
		}
	}
	if !seen[mfa.EventEmailSent] || !seen[mfa.EventFailure] {
		t.Fatalf("sign-in events = %v, want email_sent and failure", seen)
	}
}

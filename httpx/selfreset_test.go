package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// S23: client credentials are public. With them, a username and even the
// right code never remove a factor, answer like a wrong code and count
// nothing against the named user; the password step's state token does.
func TestClientCredentialReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	uri := e.enrollQR("alice-token")
	e.advance(30 * time.Second)
	client := [2]string{"demo-client", "demo-secret"}
	body := func(user, code string) string {
		return fmt.Sprintf(`{"username":%q,"mfatype":"AUTHENTICATOR","totp":%q}`, user, code)
	}
	ctx := context.Background()
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: [2]string{"demo-client", "wrong"}, body: body("alice@example.com", e.codeFor(uri, 0))}), 401, "unauthorized")

	// The right code with a bare username: refused, nothing changed or counted.
	for _, path := range []string{resetMyPath, "/oauth" + resetMyPath} {
		expect(t, e.do(request{method: "POST", path: path, basic: client, body: body("alice@example.com", e.codeFor(uri, 0))}), 400, "invalid_code")
	}
	if en, err := e.store.Enrollment(ctx, "alice@example.com", mfa.Authenticator); err != nil || !en.Verified {
		t.Fatalf("S23: the authenticator is gone after a username-only reset: %+v, %v", en, err)
	}
	if a, _ := e.store.Attempts(ctx, "alice@example.com", mfa.Authenticator); a.Failures != 0 {
		t.Fatalf("S23: a username-only reset counted %d failures against the user", a.Failures)
	}
	// An unknown user looks exactly the same (S18).
	unknown := e.do(request{method: "POST", path: resetMyPath, basic: client, body: body("nobody@example.com", "123456")})
	known := e.do(request{method: "POST", path: resetMyPath, basic: client, body: body("alice@example.com", "123456")})
	if unknown.status != known.status || !bytes.Equal(unknown.body, known.body) {
		t.Fatalf("unknown user %d %s vs known %d %s", unknown.status, unknown.body, known.status, known.body)
	}
	// No username and no token: a clear 400 (the body must name a sign-in).
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: client, body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 400, "invalid_code")
	// A password alone never resets (S13): the body must carry a code.
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: client, body: `{"username":"alice@example.com","password":"alice-password"}`}), 400, "invalid_request")

	// With the password step's state token and a current code: 200.
	ch, err := e.svc.StartChallenge(ctx, "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	withToken := fmt.Sprintf(`{"stateToken":%q,"mfatype":"AUTHENTICATOR","totp":%q}`, ch.Token, e.codeFor(uri, 1))
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: client, body: withToken}), 200, "")
	if _, err := e.store.Enrollment(ctx, "alice@example.com", mfa.Authenticator); err == nil {
		t.Fatal("the authenticator is still there after a reset with the state token")
	}
}

// TestLostPhoneWithoutClients: a host without client credentials (a
// cookie app, say) serves the lost-phone flow on the state token alone:
// switching the challenge to EMAIL and resetting with the emailed code or
// a recovery code, from a browser with no Authorization header. The state
// token still has to name the user (S23).
func TestLostPhoneWithoutClients(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, nil, mfa.Config{Directory: directory{"alice@example.com": "alice@example.com"}})
	uri := e.enrollQR("alice-token")
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-mfa"}), 200, "")
	expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "alice-mfa", body: verifyBody("EMAIL", e.mail.LastCode("alice@example.com"))}), 200, "")
	r := e.do(request{method: "POST", path: "/oauth/users/mfa/recoveryCodes", token: "alice-mfa"})
	expect(t, r, 200, "")
	var rc httpx.RecoveryCodesResponse
	json.Unmarshal(r.body, &rc)
	e.serveCookies(httpx.Config{}) // no Clients
	e.advance(2 * time.Minute)     // past the email resend interval
	ctx := context.Background()
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin"}

	// A username and a right code never reset without a state token.
	e.advance(30 * time.Second)
	expect(t, e.do(request{method: "POST", path: resetMyPath, header: sameOrigin,
		body: fmt.Sprintf(`{"username":"alice@example.com","mfatype":"AUTHENTICATOR","totp":%q}`, e.codeFor(uri, 0))}), 400, "invalid_code")

	// Switch to EMAIL, reset with the emailed code.
	ch, err := e.svc.StartChallenge(ctx, "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	r = e.do(request{method: "PUT", path: "/oauth/users/mfa/challenge?mfatype=EMAIL", header: sameOrigin, body: `{"stateToken":"` + ch.Token + `"}`})
	expect(t, r, 200, "")
	var sw httpx.ChallengeResponse
	if err := json.Unmarshal(r.body, &sw); err != nil || sw.StateToken.MFAType != mfa.Email {
		t.Fatalf("switch answer %s", r.body)
	}
	expect(t, e.do(request{method: "POST", path: resetMyPath, header: sameOrigin,
		body: fmt.Sprintf(`{"stateToken":%q,"mfatype":"EMAIL","totp":%q}`, sw.StateToken.Token, e.mail.LastCode("alice@example.com"))}), 200, "")
	if en, err := e.store.Enrollment(ctx, "alice@example.com", mfa.Authenticator); err == nil {
		t.Fatalf("the authenticator is still there: %+v", en)
	}

	// Enrolled again: a recovery code with a new sign-in's token, and
	// Basic credentials, which nobody checks here, change nothing.
	e.enrollQRAs(request{cookie: "alice-mfa"}) // email is still a factor: a step-up
	ch, err = e.svc.StartChallenge(ctx, "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: [2]string{"anyone", "anything"},
		body: fmt.Sprintf(`{"stateToken":%q,"mfatype":"RECOVERY","totp":%q}`, ch.Token, rc.RecoveryCodes[0])}), 200, "")
	if en, err := e.store.Enrollment(ctx, "alice@example.com", mfa.Authenticator); err == nil {
		t.Fatalf("the authenticator is still there after the recovery reset: %+v", en)
	}
}

// TestClientsRequired: with Config.Clients set, the state-token routes
// need valid Basic credentials: without them 401 with a Basic challenge
// (and a Bearer one where the route also takes Bearer's user).
func TestClientsRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.enrollQR("alice-token")
	ch, err := e.svc.StartChallenge(context.Background(), "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	resetBody := `{"stateToken":"` + ch.Token + `","mfatype":"RECOVERY","totp":"0000-0000-0000-0000"}`
	switchBody := `{"stateToken":"` + ch.Token + `"}`
	const switchPath = "/oauth/users/mfa/challenge?mfatype=EMAIL"
	check := func(name string, r response, want string) {
		t.Helper()
		expect(t, r, 401, "unauthorized")
		if got := r.header.Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, want)
		}
	}
	// OAuth host (Bearer).
	check("Bearer host, reset", e.do(request{method: "POST", path: resetMyPath, body: resetBody}), `Basic realm="mfakit", Bearer realm="mfakit"`)
	check("Bearer host, switch", e.do(request{method: "PUT", path: switchPath, body: switchBody}), `Basic realm="mfakit"`)
	// Cookie host that also has OAuth clients: no Bearer challenge.
	e.serveCookies(httpx.Config{Clients: e.authz})
	check("cookie host, reset", e.do(request{method: "POST", path: resetMyPath, body: resetBody}), `Basic realm="mfakit"`)
	check("cookie host, switch", e.do(request{method: "PUT", path: switchPath, body: switchBody}), `Basic realm="mfakit"`)
	check("cookie host, wrong secret", e.do(request{method: "PUT", path: switchPath, basic: [2]string{"demo-client", "nope"}, body: switchBody}), `Basic realm="mfakit"`)
	// With the client the switch gets past authentication (alice has no
	// email factor to switch to).
	expect(t, e.do(request{method: "PUT", path: switchPath, basic: [2]string{"demo-client", "demo-secret"}, body: switchBody}), 409, "not_enrolled")
}

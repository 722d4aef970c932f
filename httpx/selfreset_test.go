package httpx_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

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

package httpx_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// grantServer mounts StateTokenGrant on a test token endpoint.
func (e *env) grant(t *testing.T, h *httpx.Handlers, form url.Values) response {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := h.StateTokenGrant(r)
		if err != nil {
			httpx.DefaultErrorHandler(w, r, err)
			return
		}
		json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()
	resp, err := srv.Client().PostForm(srv.URL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{resp.StatusCode, resp.Header, []byte(b.String())}
}

func TestStateTokenGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	h := e.handlers(httpx.Config{})
	uri := e.enrollQR("alice-token")
	e.advance(24 * time.Hour) // the answer's lifetimes are counted on the Service's clock
	ctx := context.Background()
	ch, err := e.svc.StartChallenge(ctx, "alice@example.com", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// The login answer of the seed vendor's flow.
	rec := httptest.NewRecorder()
	h.WriteChallenge(rec, ch)
	var answer httpx.ChallengeResponse
	json.Unmarshal(rec.Body.Bytes(), &answer)
	if rec.Header().Get("Cache-Control") != "no-store" || answer.StateToken.Status != "VERIFY" ||
		answer.StateToken.MFAType != mfa.Authenticator || answer.StateToken.Token != ch.Token || answer.ExpiresIn != 600 || answer.StateToken.ExpiresIn != "600" {
		t.Fatalf("challenge answer %s", rec.Body)
	}

	form := func(code string) url.Values {
		return url.Values{"grant_type": {"state_token"}, "state_token": {ch.Token}, "totp": {code}}
	}
	expect(t, e.grant(t, h, url.Values{"grant_type": {"password"}}), 400, "invalid_request")
	expect(t, e.grant(t, h, url.Values{"grant_type": {"state_token"}}), 400, "invalid_request")
	expect(t, e.grant(t, h, form("12ab56")), 400, "invalid_request")
	expect(t, e.grant(t, h, form(e.wrongCode(uri))), 400, "invalid_code")
	r := e.grant(t, h, form(e.codeFor(uri, 0)))
	expect(t, r, 200, "")
	if !strings.Contains(string(r.body), `"User":"alice@example.com"`) {
		t.Fatalf("result %s", r.body)
	}
	expect(t, e.grant(t, h, form(e.codeFor(uri, 1))), 400, "invalid_token")

	// An expired state token is refused.
	ch, _ = e.svc.StartChallenge(ctx, "alice@example.com", "")
	e.advance(11 * time.Minute)
	expect(t, e.grant(t, h, form(e.codeFor(uri, 0))), 400, "token_expired")
}

func TestStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.enrollQR("alice-token")
	// The handlers read the Service's clock, here a day ahead of the wall
	// clock: alice-mfa passed MFA just now by that clock.
	e.advance(24 * time.Hour)
	// A second factor needs a recent MFA; the first did not.
	r := e.do(request{method: "PUT", path: enrollEmail, token: "alice-token"})
	expect(t, r, 401, "mfa_required")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), "max_age=600") {
		t.Fatalf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-stale"}), 401, "mfa_required")
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-mfa"}), 200, "")

	// RequireMFA on a host route, and its Check beside it.
	h := e.handlers(httpx.Config{})
	protected := h.Auth().RequireMFA(5 * time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("secret page"))
	}))
	for token, want := range map[string]int{"": 401, "alice-token": 401, "alice-stale": 401, "alice-mfa": 200} {
		req := httptest.NewRequest("GET", "/admin", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		protected.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("RequireMFA with %q: %d, want %d", token, rec.Code, want)
		}
		if err := h.Auth().CheckMFA(req, 5*time.Minute); (err == nil) != (want == 200) {
			t.Errorf("CheckMFA with %q: %v", token, err)
		}
	}
}

func TestRecoveryCodeEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const path = "/oauth/users/mfa/recoveryCodes"
	expect(t, e.do(request{method: "POST", path: path, token: "alice-mfa"}), 409, "not_enrolled")
	e.enrollQR("alice-token")
	expect(t, e.do(request{method: "POST", path: path, token: "alice-token"}), 401, "mfa_required")
	r := e.do(request{method: "POST", path: path, token: "alice-mfa"})
	expect(t, r, 200, "")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatal("S20: recovery codes may be cached")
	}
	var rc httpx.RecoveryCodesResponse
	json.Unmarshal(r.body, &rc)
	if len(rc.RecoveryCodes) != 10 {
		t.Fatalf("codes %s", r.body)
	}
	if r = e.do(request{method: "GET", path: path, token: "alice-token"}); !strings.Contains(string(r.body), `"remaining":10`) {
		t.Fatalf("remaining %s", r.body)
	}
	// A recovery code proves a self reset, once.
	body := `{"mfatype":"RECOVERY","totp":"` + rc.RecoveryCodes[3] + `"}`
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: body}), 200, "")
	e.enrollQR("alice-token")
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: body}), 400, "invalid_code")
	// S24: that reset removed alice's last factor, and with it the rest of
	// her recovery codes; she makes a new set after enrolling again.
	old5 := `{"mfatype":"RECOVERY","totp":"` + rc.RecoveryCodes[5] + `"}`
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: old5}), 400, "invalid_code")
	r = e.do(request{method: "POST", path: path, token: "alice-mfa"})
	expect(t, r, 200, "")
	json.Unmarshal(r.body, &rc)
	// Lost phone: client credentials, the sign-in's state token and a
	// recovery code reset the authenticator; a password alone does not.
	ch, err := e.svc.StartChallenge(context.Background(), "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	client := [2]string{"demo-client", "demo-secret"}
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: client,
		body: `{"stateToken":"` + ch.Token + `","password":"alice-password"}`}), 400, "invalid_request")
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: client,
		body: `{"stateToken":"` + ch.Token + `","mfatype":"RECOVERY","totp":"` + rc.RecoveryCodes[5] + `"}`}), 200, "")
	if r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"}); !strings.Contains(string(r.body), `"details":{}`) {
		t.Fatalf("after the lost-phone reset: %s", r.body)
	}
	expect(t, e.do(request{method: "DELETE", path: path, token: "alice-token"}), 405, "method_not_allowed")
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: `{"mfatype":"EMAIL","totp":"123456"}`}), 400, "invalid_request")
}

// directory is a test mfa.Directory.
type directory map[string]string

func (d directory) EmailOf(_ context.Context, user string) (string, error) { return d[user], nil }

// TestSwitchChallenge: the switched sign-in's code goes to the address the
// Service's Directory gives; without a Directory the switch is refused
// with no_email, and the old state token stays good.
func TestSwitchChallenge(t *testing.T) {
	t.Parallel()
	const path = "/oauth/users/mfa/challenge?mfatype=EMAIL"
	client := [2]string{"demo-client", "demo-secret"}
	// start enrolls alice's authenticator and email and starts a sign-in,
	// which asks for the authenticator.
	start := func(t *testing.T, e *env) mfa.Challenge {
		e.enrollQR("alice-token")
		expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-mfa"}), 200, "")
		expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "alice-mfa", body: verifyBody("EMAIL", e.mail.LastCode("alice@example.com"))}), 200, "")
		e.advance(2 * time.Minute) // past the resend interval
		ch, err := e.svc.StartChallenge(context.Background(), "alice@example.com", "")
		if err != nil || ch.Factor != mfa.Authenticator {
			t.Fatalf("challenge %+v, %v", ch, err)
		}
		return ch
	}
	t.Run("without a Directory", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		ch := start(t, e)
		body := `{"stateToken":"` + ch.Token + `"}`
		expect(t, e.do(request{method: "PUT", path: path, body: body}), 401, "unauthorized")
		expect(t, e.do(request{method: "PUT", path: path, basic: client, body: body}), 409, "no_email")
		// Refused, so the old token still switches once there is an address.
		if _, err := e.svc.SwitchChallenge(context.Background(), ch.Token, mfa.Email, directory{"alice@example.com": "a@x.example"}.EmailOf); err != nil {
			t.Fatalf("the old token after a refused switch: %v", err)
		}
	})
	t.Run("with a Directory", func(t *testing.T) {
		t.Parallel()
		e := newEnvWith(t, nil, mfa.Config{Directory: directory{"alice@example.com": "alice@home.example"}})
		ch := start(t, e)
		r := e.do(request{method: "PUT", path: path, basic: client, body: `{"stateToken":"` + ch.Token + `"}`})
		expect(t, r, 200, "")
		var sw httpx.ChallengeResponse
		if err := json.Unmarshal(r.body, &sw); err != nil || sw.StateToken.MFAType != mfa.Email || sw.StateToken.Token == "" {
			t.Fatalf("switch answer %s", r.body)
		}
		code := e.mail.LastCode("alice@home.example")
		if code == "" {
			t.Fatal("no code mailed to the Directory's address")
		}
		form := url.Values{"grant_type": {"state_token"}, "state_token": {sw.StateToken.Token}, "totp": {code}}
		expect(t, e.grant(t, e.handlers(httpx.Config{}), form), 200, "")
	})
}

func TestVerifyEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const path = "/oauth/users/mfa/verify"
	expect(t, e.do(request{method: "PUT", path: path, token: "alice-token", body: verifyBody("AUTHENTICATOR", "123456")}), 409, "not_enrolled")
	uri := e.enrollQR("alice-token")
	expect(t, e.do(request{method: "PUT", path: path, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 400, "code_reused")
	expect(t, e.do(request{method: "PUT", path: path, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 1))}), 200, "")
	expect(t, e.do(request{method: "PUT", path: path, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 1))}), 400, "code_reused")
	expect(t, e.do(request{method: "PUT", path: path, token: "alice-token", body: verifyBody("EMAIL", "123456")}), 400, "invalid_request")
}

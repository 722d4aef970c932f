package httpx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// signInAt serves h.CompleteSignIn as a host's own route would, answering
// the LoginResult as JSON.
func signInAt(t *testing.T, h *httpx.Handlers) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := h.CompleteSignIn(r)
		if err != nil {
			httpx.DefaultErrorHandler(w, r, err)
			return
		}
		json.NewEncoder(w).Encode(res)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// post sends body as contentType to url and returns the answer.
func post(t *testing.T, srv *httptest.Server, path, contentType, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

const formType = "application/x-www-form-urlencoded"

// TestCompleteSignIn: the second step of a sign-in from a form or a JSON
// body, under either spelling of each field, with no grant_type.
func TestCompleteSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	uri := e.enrollQR("alice-token")
	srv := signInAt(t, e.handlers(httpx.Config{}))
	start := func() string {
		t.Helper()
		e.advance(30 * time.Second) // a fresh time step for each sign-in
		ch, err := e.svc.StartChallenge(context.Background(), "alice@example.com", "")
		if err != nil || ch.Status != mfa.ChallengeVerify {
			t.Fatalf("challenge %+v, %v", ch, err)
		}
		return ch.Token
	}
	ok := func(r response) {
		t.Helper()
		expect(t, r, 200, "")
		if !strings.Contains(string(r.body), `"User":"alice@example.com"`) {
			t.Fatalf("result %s", r.body)
		}
	}

	// A form, as a browser posts it; the OAuth names.
	tok := start()
	ok(post(t, srv, "/", formType, url.Values{"state_token": {tok}, "totp": {e.codeFor(uri, 0)}}.Encode(), nil))
	expect(t, post(t, srv, "/", formType, url.Values{"state_token": {tok}, "totp": {e.codeFor(uri, 1)}}.Encode(), nil), 400, "invalid_token")
	// A form with the JSON names; a wrong code leaves the token usable.
	tok = start()
	expect(t, post(t, srv, "/", formType, url.Values{"stateToken": {tok}, "code": {e.wrongCode(uri)}}.Encode(), nil), 400, "invalid_code")
	ok(post(t, srv, "/", formType, url.Values{"stateToken": {tok}, "code": {e.codeFor(uri, 0)}}.Encode(), nil))
	// JSON, both spellings.
	tok = start()
	ok(post(t, srv, "/", "application/json", fmt.Sprintf(`{"stateToken":%q,"totp":%q}`, tok, e.codeFor(uri, 0)), nil))
	tok = start()
	ok(post(t, srv, "/", "application/json; charset=utf-8", fmt.Sprintf(`{"state_token":%q,"code":%q,"mfatype":"AUTHENTICATOR"}`, tok, e.codeFor(uri, 0)), nil))

	// A recovery code.
	rc := e.do(request{method: "POST", path: "/oauth/users/mfa/recoveryCodes", token: "alice-mfa"})
	expect(t, rc, 200, "")
	var codes httpx.RecoveryCodesResponse
	json.Unmarshal(rc.body, &codes)
	tok = start()
	r := post(t, srv, "/", formType, url.Values{"state_token": {tok}, "totp": {codes.RecoveryCodes[0]}, "mfatype": {"RECOVERY"}}.Encode(), nil)
	ok(r)
	if !strings.Contains(string(r.body), `"Factor":"RECOVERY"`) {
		t.Fatalf("recovery sign-in %s", r.body)
	}

	tok = start()
	for _, c := range []struct {
		name, contentType, body string
		status                  int
		code, field             string
	}{
		{"no token", formType, "totp=123456", 400, "invalid_request", "state_token"},
		{"both token spellings", formType, url.Values{"state_token": {tok}, "stateToken": {tok}, "totp": {"123456"}}.Encode(), 400, "invalid_request", "state_token"},
		{"both code spellings", "application/json", fmt.Sprintf(`{"state_token":%q,"totp":"123456","code":"123456"}`, tok), 400, "invalid_request", "totp"},
		{"a field twice", formType, url.Values{"state_token": {tok}, "totp": {"123456", "654321"}}.Encode(), 400, "invalid_request", "totp"},
		{"not a code", formType, url.Values{"state_token": {tok}, "totp": {"12ab56"}}.Encode(), 400, "invalid_request", "totp"},
		{"unknown factor", formType, url.Values{"state_token": {tok}, "totp": {"123456"}, "mfatype": {"SMS"}}.Encode(), 400, "invalid_request", "mfatype"},
		{"unknown JSON field", "application/json", fmt.Sprintf(`{"state_token":%q,"totp":"123456","grant_type":"x"}`, tok), 400, "invalid_request", "grant_type"},
		{"neither form nor JSON", "text/plain", "state_token=x", 415, "unsupported_media_type", ""},
		{"too large", formType, "state_token=" + strings.Repeat("x", 5000), 413, "body_too_large", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, srv, "/", c.contentType, c.body, nil)
			expect(t, r, c.status, c.code)
			if c.field != "" {
				if p := r.problem(t); len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != c.field {
					t.Fatalf("problem does not name %s: %s", c.field, r.body)
				}
			}
		})
	}
	// None of those spent the token.
	ok(post(t, srv, "/", formType, url.Values{"state_token": {tok}, "totp": {e.codeFor(uri, 0)}}.Encode(), nil))
}

// TestSignIn: the handler calls onSuccess exactly once for a completed
// sign-in and never for a failed one, whose error goes to
// Config.ErrorHandler; it takes POST only and is cross-origin checked.
func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	uri := e.enrollQR("alice-token")
	var mu sync.Mutex
	var successes []mfa.LoginResult
	var failures []error
	h := httpx.New(e.svc, e.cookieAuthn(), httpx.Config{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
		httpx.DefaultErrorHandler(w, r, err)
	}})
	srv := httptest.NewServer(h.SignIn(func(w http.ResponseWriter, r *http.Request, res mfa.LoginResult) {
		mu.Lock()
		successes = append(successes, res)
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "new-session"})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}))
	t.Cleanup(srv.Close)
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(successes), len(failures) }

	e.advance(30 * time.Second)
	ch, err := e.svc.StartChallenge(context.Background(), "alice@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	form := func(code string) string { return url.Values{"state_token": {ch.Token}, "totp": {code}}.Encode() }
	expect(t, post(t, srv, "/", formType, form(e.wrongCode(uri)), nil), 400, "invalid_code")
	expect(t, post(t, srv, "/", formType, form(e.codeFor(uri, 0)), map[string]string{"Sec-Fetch-Site": "cross-site"}), 403, "cross_origin")
	expect(t, post(t, srv, "/", formType, "totp=123456", nil), 400, "invalid_request")
	req, _ := http.NewRequest("GET", srv.URL+"/?"+form(e.codeFor(uri, 0)), nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if s, f := count(); s != 0 || f != 4 {
		t.Fatalf("after four failures: %d successes, %d errors handled", s, f)
	}

	noRedirect := *srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Post(srv.URL, formType, strings.NewReader(form(e.codeFor(uri, 0))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Set-Cookie"), "sid=new-session") {
		t.Fatalf("success: %d %v", resp.StatusCode, resp.Header)
	}
	expect(t, post(t, srv, "/", formType, form(e.codeFor(uri, 1)), nil), 400, "invalid_token") // spent
	s, f := count()
	if s != 1 || f != 5 {
		t.Fatalf("%d successes, %d errors handled; want 1 and 5", s, f)
	}
	if res := successes[0]; res.User != "alice@example.com" || res.Factor != mfa.Authenticator || res.NeedsEnrollment {
		t.Fatalf("onSuccess got %+v", res)
	}
}

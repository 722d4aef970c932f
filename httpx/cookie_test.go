package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// cookieAuthn is a cookie host's Authenticator: the session cookie "sid"
// names one of e's sessions (the tokens of newAuthz).
func (e *env) cookieAuthn() httpx.Authenticator {
	return httpx.AuthenticatorFunc(func(r *http.Request) (httpx.User, error) {
		c, err := r.Cookie("sid")
		if err != nil {
			return httpx.User{}, httpx.ErrUnauthorized
		}
		return e.authz.AuthenticateToken(r.Context(), c.Value)
	})
}

// serveCookies makes e serve the API the cookie way, with cfg (no client
// credentials unless cfg sets them).
func (e *env) serveCookies(cfg httpx.Config, middleware ...func(http.Handler) http.Handler) *httpx.Handlers {
	h := httpx.New(e.svc, e.cookieAuthn(), cfg)
	e.srv = httptest.NewServer(h.Handler(middleware...))
	e.t.Cleanup(e.srv.Close)
	return h
}

// verification is one call of Config.OnVerified.
type verification struct {
	user   string
	factor mfa.Factor
}

// TestCookieHost drives enrollment, verification and re-verification
// with a session cookie: OnVerified hears of each success (and can set a
// cookie on the answer), never of a failure; the cookie Authenticator's
// refusals carry no Bearer challenge.
func TestCookieHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var mu sync.Mutex
	var heard []verification
	e.serveCookies(httpx.Config{OnVerified: func(w http.ResponseWriter, r *http.Request, u httpx.User, f mfa.Factor) {
		mu.Lock()
		heard = append(heard, verification{u.Username, f})
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "mfa_at", Value: "now"})
	}})
	heardSoFar := func() []verification { mu.Lock(); defer mu.Unlock(); return append([]verification(nil), heard...) }

	for _, c := range []struct {
		name string
		req  request
	}{
		{"no cookie", request{method: "GET", path: detailsPath}},
		{"unknown session", request{method: "GET", path: detailsPath, cookie: "forged"}},
		{"a Bearer token the cookie host does not take", request{method: "GET", path: detailsPath, token: "alice-token"}},
	} {
		r := e.do(c.req)
		expect(t, r, 401, "unauthorized")
		if got := r.header.Get("WWW-Authenticate"); got != "" {
			t.Fatalf("%s: a cookie host's 401 carries WWW-Authenticate %q", c.name, got)
		}
	}

	r := e.do(request{method: "PUT", path: qrPath, cookie: "alice-token"})
	expect(t, r, 200, "")
	uri := decodeQR(t, r.body)
	expect(t, e.do(request{method: "PUT", path: verifyPath, cookie: "alice-token", body: verifyBody("AUTHENTICATOR", e.wrongCode(uri))}), 400, "invalid_code")
	if got := heardSoFar(); len(got) != 0 {
		t.Fatalf("OnVerified after a wrong code: %v", got)
	}
	r = e.do(request{method: "PUT", path: verifyPath, cookie: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))})
	expect(t, r, 200, "")
	if !strings.Contains(r.header.Get("Set-Cookie"), "mfa_at=now") {
		t.Fatalf("the cookie OnVerified set is not on the answer: %v", r.header)
	}

	// Re-verification inside the session (PUT /oauth/users/mfa/verify).
	const checkPath = "/oauth/users/mfa/verify"
	expect(t, e.do(request{method: "PUT", path: checkPath, cookie: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 400, "code_reused")
	r = e.do(request{method: "PUT", path: checkPath, cookie: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 1))})
	expect(t, r, 200, "")
	if !strings.Contains(r.header.Get("Set-Cookie"), "mfa_at=now") {
		t.Fatalf("CheckCode: no cookie from OnVerified: %v", r.header)
	}

	// A second factor needs a step-up; the cookie host's 401 has no
	// Bearer challenge.
	r = e.do(request{method: "PUT", path: enrollEmail, cookie: "alice-stale"})
	expect(t, r, 401, "mfa_required")
	if got := r.header.Get("WWW-Authenticate"); got != "" {
		t.Fatalf("a cookie host's step-up answer carries WWW-Authenticate %q", got)
	}
	expect(t, e.do(request{method: "PUT", path: enrollEmail, cookie: "alice-mfa"}), 200, "")
	expect(t, e.do(request{method: "PUT", path: verifyEmail, cookie: "alice-mfa", body: verifyBody("EMAIL", e.mail.LastCode("alice@example.com"))}), 200, "")

	want := []verification{{"alice@example.com", mfa.Authenticator}, {"alice@example.com", mfa.Authenticator}, {"alice@example.com", mfa.Email}}
	if got := heardSoFar(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("OnVerified heard %v, want %v", got, want)
	}
}

// TestCrossOrigin: a state-changing request without an Authorization
// header that a browser sent from another site is refused (403
// cross_origin) before anything happens; same-origin requests, safe
// methods, requests with an Authorization header and trusted origins
// pass.
func TestCrossOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	bearerSrv := e.srv
	trusted := http.NewCrossOriginProtection()
	if err := trusted.AddTrustedOrigin("https://app.example"); err != nil {
		t.Fatal(err)
	}
	e.serveCookies(httpx.Config{CrossOrigin: trusted})
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	for _, c := range []struct {
		name   string
		header map[string]string
	}{
		{"Sec-Fetch-Site", crossSite},
		{"Sec-Fetch-Site same-site", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.evil.example"}},
		{"Origin only (an older browser)", map[string]string{"Origin": "https://evil.example"}},
	} {
		for _, rq := range []request{
			{method: "PUT", path: qrPath},
			{method: "PUT", path: verifyPath, body: verifyBody("AUTHENTICATOR", "123456")},
			{method: "POST", path: resetMyPath, body: verifyBody("AUTHENTICATOR", "123456")},
			{method: "POST", path: "/oauth/users/mfa/recoveryCodes"},
			{method: "PUT", path: "/oauth/users/mfa/challenge?mfatype=EMAIL", body: `{"stateToken":"x"}`},
		} {
			rq.cookie, rq.header = "alice-mfa", c.header
			expect(t, e.do(rq), 403, "cross_origin")
		}
	}
	if r := e.do(request{method: "GET", path: detailsPath, cookie: "alice-mfa"}); !strings.Contains(string(r.body), `"details":{}`) {
		t.Fatalf("a refused cross-origin request changed something: %s", r.body)
	}

	// Safe methods are never checked; same-origin requests and trusted
	// origins pass.
	expect(t, e.do(request{method: "GET", path: detailsPath, cookie: "alice-mfa", header: crossSite}), 200, "")
	expect(t, e.do(request{method: "PUT", path: qrPath, cookie: "alice-mfa", header: map[string]string{"Sec-Fetch-Site": "same-origin"}}), 200, "")
	expect(t, e.do(request{method: "PUT", path: qrPath, cookie: "alice-mfa", header: map[string]string{"Origin": e.srv.URL}}), 200, "")
	expect(t, e.do(request{method: "PUT", path: qrPath, cookie: "alice-mfa",
		header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example"}}), 200, "")

	// With an Authorization header the request is not checked: a Bearer
	// single-page app on another origin keeps working.
	e.srv = bearerSrv
	expect(t, e.do(request{method: "PUT", path: qrPath, token: "bob-token", header: crossSite}), 200, "")
}

// TestUserFromMiddleware: a user that host middleware put in the context
// (WithUser) is taken by every kit route and check without asking the
// Authenticator; the middleware of Handler and Mount runs, outermost
// first.
func TestUserFromMiddleware(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var mu sync.Mutex
	var trace []string
	record := func(s string) { mu.Lock(); trace = append(trace, s); mu.Unlock() }
	never := httpx.AuthenticatorFunc(func(*http.Request) (httpx.User, error) {
		record("authenticator")
		return httpx.User{}, httpx.ErrUnauthorized
	})
	carol := httpx.User{Username: "carol@example.com", Email: "carol@example.com", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	session := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			record("session")
			if r.Header.Get("X-Session") == "carol" {
				u := carol
				u.MFAAt = e.clock()
				r = r.WithContext(httpx.WithUser(r.Context(), u))
			}
			next.ServeHTTP(w, r)
		})
	}
	outer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			record("outer")
			next.ServeHTTP(w, r)
		})
	}
	h := httpx.New(e.svc, never, httpx.Config{})
	e.srv = httptest.NewServer(h.Handler(outer, session))
	t.Cleanup(e.srv.Close)
	asCarol := map[string]string{"X-Session": "carol"}

	expect(t, e.do(request{method: "GET", path: detailsPath, header: asCarol}), 200, "")
	mu.Lock()
	if strings.Join(trace, ",") != "outer,session" {
		t.Fatalf("trace %v, want the middleware outermost first and no call of the Authenticator", trace)
	}
	trace = nil
	mu.Unlock()
	expect(t, e.do(request{method: "PUT", path: adminPath("bob@example.com"), header: asCarol}), 200, "")
	expect(t, e.do(request{method: "POST", path: "/oauth/users/mfa/recoveryCodes", header: asCarol}), 409, "not_enrolled") // past the step-up
	expect(t, e.do(request{method: "GET", path: detailsPath}), 401, "unauthorized")
	mu.Lock()
	if strings.Join(trace, ",") != "outer,session,outer,session,outer,session,authenticator" {
		t.Fatalf("trace %v", trace)
	}
	trace = nil
	mu.Unlock()

	// Mount wraps each route the same way.
	mux := http.NewServeMux()
	h.Mount(mux, "/mfa", session)
	req := httptest.NewRequest("GET", "/mfa"+detailsPath, nil)
	req.Header.Set("X-Session", "carol")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("Mount with middleware: %d %s", rec.Code, rec.Body)
	}

	// The checks for host routes take the context's user too.
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, _ := httpx.UserFrom(r.Context()); u.Username != carol.Username {
			t.Errorf("the route sees user %q", u.Username)
		}
	})
	auth := h.Auth()
	for name, mw := range map[string]func(http.Handler) http.Handler{
		"RequireUser": auth.RequireUser,
		"RequireRole": auth.RequireRole("ROLE_ADMIN_CUSTOMER"),
		"RequireMFA":  auth.RequireMFA(time.Minute),
	} {
		req := httptest.NewRequest("GET", "/host", nil)
		req = req.WithContext(httpx.WithUser(req.Context(), httpx.User{Username: carol.Username, Roles: carol.Roles, MFAAt: e.clock()}))
		rec := httptest.NewRecorder()
		mw(ok).ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("%s with a user in the context: %d %s", name, rec.Code, rec.Body)
		}
		if err := auth.CheckMFA(req, time.Minute); err != nil {
			t.Errorf("CheckMFA with a user in the context: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(trace, "authenticator") {
		t.Fatalf("the Authenticator was asked although the context had a user: %v", trace)
	}
}

package main

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mfakit/mfakit/mfa"
)

// clock is real time shifted by what a test adds: it moves TOTP steps and
// the age of a session's MFA forward without sleeping.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

type testApp struct {
	t     *testing.T
	app   *app
	srv   *httptest.Server
	clock *clock
	stop  func() // closes the server and the app, once
}

// startApp runs the app on a fresh database in a temporary folder (or on
// dbPath, when given, to restart on the same file).
func startApp(t *testing.T, dbPath ...string) *testApp {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	if len(dbPath) > 0 {
		path = dbPath[0]
	}
	c := &clock{}
	a, err := newApp(context.Background(), options{db: path, now: c.now, bcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	stop := sync.OnceFunc(func() {
		srv.Close()
		a.Close()
	})
	t.Cleanup(stop)
	return &testApp{t: t, app: a, srv: srv, clock: c, stop: stop}
}

// browser is one cookie jar: one person's browser. It does not follow
// redirects, so that tests see where each answer leads.
type browser struct {
	ta     *testApp
	client *http.Client
}

func (ta *testApp) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{ta: ta, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// answer is a response, its body read.
type answer struct {
	status   int
	location string
	body     string
}

// problemCode is the code of a problem+json answer.
func (a answer) problemCode() string {
	var p struct{ Code string }
	json.Unmarshal([]byte(a.body), &p)
	return p.Code
}

func (b *browser) do(req *http.Request) answer {
	b.ta.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), string(body)}
}

func (b *browser) get(path string) answer {
	b.ta.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.ta.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) answer {
	b.ta.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.ta.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// call sends a JSON request, as static/mfa.js does.
func (b *browser) call(method, path, body string) answer {
	b.ta.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, b.ta.srv.URL+path, rd)
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return b.do(req)
}

// expect fails the test unless got has status (and leads to location,
// when given).
func (b *browser) expect(what string, got answer, status int, location ...string) answer {
	b.ta.t.Helper()
	if got.status != status || len(location) > 0 && got.location != location[0] {
		b.ta.t.Fatalf("%s: %d %q, want %d %v; body:\n%s", what, got.status, got.location, status, location, got.body)
	}
	return got
}

// sessionToken is the value of the browser's session cookie.
func (b *browser) sessionToken() string {
	u, _ := url.Parse(b.ta.srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "session" {
			return c.Value
		}
	}
	return ""
}

var stateTokenInput = regexp.MustCompile(`name="state_token" value="([^"]+)"`)

// login posts the password form and returns the state token of the code
// form, or "" when the password alone signed the user in.
func (b *browser) login(name, password string) string {
	b.ta.t.Helper()
	got := b.post("/login", url.Values{"username": {name}, "password": {password}})
	if got.status == http.StatusSeeOther && got.location == "/account" {
		return ""
	}
	m := stateTokenInput.FindStringSubmatch(got.body)
	if got.status != http.StatusOK || m == nil {
		b.ta.t.Fatalf("login %s: %d %q, neither signed in nor asked for a code:\n%s", name, got.status, got.location, got.body)
	}
	return html.UnescapeString(m[1])
}

// authenticator is the user's authenticator app.
type authenticator struct {
	secret []byte
	p      mfa.TOTP
}

// enroll sets up an authenticator for the signed-in user as the account
// page's script does: the QR code's JSON, then the first code.
func (b *browser) enroll(c *clock) authenticator {
	b.ta.t.Helper()
	got := b.expect("associateQRCode", b.call(http.MethodPut, "/mfa/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", ""), http.StatusOK)
	var key struct{ OTPAuthURL string }
	if err := json.Unmarshal([]byte(got.body), &key); err != nil {
		b.ta.t.Fatal(err)
	}
	secret, p, err := mfa.ParseKeyURI(key.OTPAuthURL)
	if err != nil {
		b.ta.t.Fatal(err)
	}
	app := authenticator{secret, p}
	b.expect("verifyQRCodeEnroll", b.call(http.MethodPut, "/mfa/users/mfa/verifyQRCodeEnroll",
		`{"mfatype":"AUTHENTICATOR","totp":"`+app.code(c)+`"}`), http.StatusOK)
	return app
}

// code is the app's code now. Each code may be used once: tests move the
// clock to the next step before they need another.
func (a authenticator) code(c *clock) string { return a.p.Code(a.secret, a.p.Step(c.now())) }

// nextStep moves the clock to the next TOTP step.
func (ta *testApp) nextStep() { ta.clock.advance(30 * time.Second) }

func (ta *testApp) verified(user string) bool {
	ta.t.Helper()
	st, err := ta.app.mfa.Status(context.Background(), user)
	if err != nil {
		ta.t.Fatal(err)
	}
	return st.Details[mfa.Authenticator].Verified
}

// TestJourney walks one person through the app: sign in with the password,
// set up an authenticator, sign out, sign in with password and code, open
// the export behind its step-up (fresh, stale, fresh again), delete the
// account, and find that the kit forgot it.
func TestJourney(t *testing.T) {
	ta := startApp(t)
	b := ta.browser()
	const alice, password = "alice@example.com", "alice-password"

	if token := b.login(alice, password); token != "" {
		t.Fatal("a user without MFA was asked for a code")
	}
	b.expect("account", b.get("/account"), http.StatusOK)
	if got := b.expect("export without a factor", b.get("/account/export"), http.StatusForbidden); got.problemCode() != "enrollment_required" {
		t.Fatalf("export without a factor: %s", got.body)
	}

	app := b.enroll(ta.clock)
	if !ta.verified(alice) {
		t.Fatal("the authenticator is not verified after enrollment")
	}
	// Setting up the authenticator passed a code: the export opens.
	b.expect("export after enrolling", b.get("/account/export"), http.StatusOK)

	b.expect("logout", b.post("/logout", nil), http.StatusSeeOther, "/login")
	b.expect("account after logout", b.get("/account"), http.StatusSeeOther, "/login?next=%2Faccount")

	ta.nextStep() // the enrollment used this step's code
	token := b.login(alice, password)
	if token == "" {
		t.Fatal("a user with an authenticator was signed in by the password alone")
	}
	b.expect("account between password and code", b.get("/account"), http.StatusSeeOther)
	wrong := b.post("/login/code", url.Values{"state_token": {token}, "totp": {"000000"}})
	if wrong.status != http.StatusBadRequest || wrong.problemCode() != "invalid_code" {
		t.Fatalf("a wrong code: %d %s", wrong.status, wrong.body)
	}
	b.expect("the right code", b.post("/login/code", url.Values{"state_token": {token}, "totp": {app.code(ta.clock)}}),
		http.StatusSeeOther, "/account")
	b.expect("account", b.get("/account"), http.StatusOK)

	// Step-up: the sign-in's MFA is fresh, then 6 minutes old (RequireMFA
	// allows 5), then fresh again after a re-verification.
	got := b.expect("export, fresh MFA", b.get("/account/export"), http.StatusOK)
	if !strings.Contains(got.body, `"username":"alice@example.com"`) {
		t.Fatalf("export: %s", got.body)
	}
	ta.clock.advance(6 * time.Minute)
	if got := b.get("/account/export"); got.status != http.StatusUnauthorized || got.problemCode() != "mfa_required" {
		t.Fatalf("export, stale MFA: %d %s", got.status, got.body)
	}
	before := b.sessionToken()
	b.expect("re-verify", b.call(http.MethodPut, "/mfa/oauth/users/mfa/verify",
		`{"mfatype":"AUTHENTICATOR","totp":"`+app.code(ta.clock)+`"}`), http.StatusOK)
	if b.sessionToken() == before {
		t.Error("re-verifying kept the session token; OnVerified should renew it")
	}
	b.expect("export after re-verifying", b.get("/account/export"), http.StatusOK)

	b.expect("delete, wrong password", b.post("/account/delete", url.Values{"password": {"nope"}}), http.StatusUnauthorized)
	b.expect("delete", b.post("/account/delete", url.Values{"password": {password}}), http.StatusSeeOther, "/login")
	st, err := ta.app.mfa.Status(context.Background(), alice)
	if err != nil || len(st.Details) != 0 {
		t.Fatalf("the kit still knows the deleted user: %+v %v", st.Details, err)
	}
	b.expect("account after deletion", b.get("/account"), http.StatusSeeOther)
	b.expect("sign in after deletion", b.post("/login", url.Values{"username": {alice}, "password": {password}}), http.StatusUnauthorized)

	// A new account with the same name starts without MFA.
	other := ta.browser()
	other.expect("sign up again", other.post("/signup", url.Values{"username": {alice}, "password": {"new-password"}}),
		http.StatusSeeOther, "/account")
	other.expect("logout", other.post("/logout", nil), http.StatusSeeOther, "/login")
	if token := other.login(alice, "new-password"); token != "" {
		t.Fatal("the new account with the old name was asked for the old account's code")
	}
}

// TestAdminReset: an administrator resets a user's authenticator through
// the kit's route; the user's sessions end (EndSessions), and the next
// sign-in needs the password only. A user who is not an administrator may
// not reset anyone.
func TestAdminReset(t *testing.T) {
	ta := startApp(t)
	alice, admin := ta.browser(), ta.browser()
	alice.login("alice@example.com", "alice-password")
	alice.enroll(ta.clock)
	const resetAlice = "/mfa/users/alice%40example.com/mfa/resetQRCodeEnroll"
	resetAdmin := "/mfa/users/" + url.PathEscape("admin@example.com") + "/mfa/resetQRCodeEnroll"
	alice.expect("a user resets another", alice.call(http.MethodPut, resetAdmin, ""), http.StatusForbidden)

	admin.login("admin@example.com", "admin-password")
	admin.expect("admin page", admin.get("/admin"), http.StatusOK)
	alice.expect("admin page as a user", alice.get("/admin"), http.StatusForbidden)
	admin.expect("admin reset", admin.call(http.MethodPut, resetAlice, ""), http.StatusOK)
	if ta.verified("alice@example.com") {
		t.Fatal("the authenticator is still verified after the admin reset")
	}
	alice.expect("alice's session after the reset", alice.get("/account"), http.StatusSeeOther, "/login?next=%2Faccount")
	admin.expect("the admin's session", admin.get("/account"), http.StatusOK)
	if token := alice.login("alice@example.com", "alice-password"); token != "" {
		t.Fatal("asked for a code after the admin reset")
	}
	alice.expect("signed in again", alice.get("/account"), http.StatusOK)
}

// TestMFATimeBelongsToItsUser: the MFA time of one user's sign-in does not
// carry over when another user signs in on the same browser.
func TestMFATimeBelongsToItsUser(t *testing.T) {
	ta := startApp(t)
	b := ta.browser()
	b.login("alice@example.com", "alice-password")
	b.enroll(ta.clock)
	b.expect("alice's export", b.get("/account/export"), http.StatusOK)
	b.expect("admin signs in on alice's browser", b.post("/login", url.Values{"username": {"admin@example.com"},
		"password": {"admin-password"}}), http.StatusSeeOther, "/account")
	if got := b.get("/account/export"); got.status != http.StatusForbidden || got.problemCode() != "enrollment_required" {
		t.Fatalf("the admin's export on alice's browser: %d %s", got.status, got.body)
	}
}

// TestCrossOrigin: another site cannot post the code form or the kit's
// routes with the user's cookie.
func TestCrossOrigin(t *testing.T) {
	ta := startApp(t)
	b := ta.browser()
	b.login("alice@example.com", "alice-password")
	for _, path := range []string{"/login/code", "/mfa/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", "/account/delete"} {
		req, _ := http.NewRequest(http.MethodPost, ta.srv.URL+path, strings.NewReader("state_token=x&totp=123456&password=alice-password"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if got := b.do(req); got.status != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d", path, got.status)
		}
	}
	b.expect("still signed in", b.get("/account"), http.StatusOK)
}

// TestRestart: users, the kit's tables and its key live in the database
// file and the key file beside it, so an enrollment outlives a restart
// (sessions, in memory, do not).
func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	first := startApp(t, path)
	b := first.browser()
	b.login("alice@example.com", "alice-password")
	b.enroll(first.clock)
	first.stop()

	second := startApp(t, path)
	if !second.verified("alice@example.com") {
		t.Fatal("the enrollment did not outlive the restart")
	}
	if token := second.browser().login("alice@example.com", "alice-password"); token == "" {
		t.Fatal("no code asked after a restart")
	}
}

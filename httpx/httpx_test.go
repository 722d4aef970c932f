package httpx_test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// authz is the test's OAuth identity system, a TokenAuthenticator and a
// ClientAuthenticator: fixed tokens and one client. Each test
// builds its own with newAuthz; nothing of it is shared.
type authz struct {
	// now is the test's clock: MFA times are computed from it.
	now   func() time.Time
	users map[string]httpx.User
	// mfaAge is, per token, how long ago on the test's clock its session
	// passed MFA; tokens without an entry never did.
	mfaAge map[string]time.Duration
	// expired tokens are refused as a real host refuses a lapsed session.
	expired map[string]bool
}

// newAuthz returns the test identity system over the test's clock: alice, bob,
// an admin and a user without email, each with a password-only session
// token; alice also with a session that passed MFA just now ("alice-mfa")
// and one that passed it an hour ago ("alice-stale"). "broken" fails like
// an identity backend that is down.
func newAuthz(now func() time.Time) authz {
	alice := httpx.User{Username: "alice@example.com", Email: "alice@example.com", Roles: []string{"ROLE_USER"}}
	return authz{
		now: now,
		users: map[string]httpx.User{
			"alice-token": alice,
			"alice-mfa":   alice,
			"alice-stale": alice,
			"bob-token":   {Username: "bob@example.com", Email: "bob@example.com", Roles: []string{"ROLE_USER"}},
			"admin-token": {Username: "admin@example.com", Email: "admin@example.com", Roles: []string{"ROLE_ADMIN_CUSTOMER"}},
			"noemail":     {Username: "ghost", Roles: []string{"ROLE_USER"}},
		},
		mfaAge:  map[string]time.Duration{"alice-mfa": 0, "alice-stale": time.Hour},
		expired: map[string]bool{"expired-token": true},
	}
}

func (a authz) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	if token == "broken" {
		return httpx.User{}, errors.New("identity backend down: secret detail")
	}
	if a.expired[token] {
		return httpx.User{}, fmt.Errorf("session expired: %w", httpx.ErrUnauthorized)
	}
	u, ok := a.users[token]
	if !ok {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	if age, ok := a.mfaAge[token]; ok {
		u.MFAAt = a.now().Add(-age)
	}
	return u, nil
}

func (a authz) AuthenticateClient(_ context.Context, id, secret string) error {
	if subtle.ConstantTimeCompare([]byte(id+":"+secret), []byte("demo-client:demo-secret")) != 1 {
		return httpx.ErrUnauthorized
	}
	return nil
}

type env struct {
	t     *testing.T
	srv   *httptest.Server
	svc   *mfa.Service
	authz authz
	mail  *mailertest.Recorder
	store storage.Store
	now   time.Time
	mu    sync.Mutex
}

func (e *env) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// newEnv serves the API of a Service of its own over store (a fresh
// memstore when nil), with quiet logs.
func newEnv(t *testing.T, store storage.Store) *env {
	t.Helper()
	return newEnvWith(t, store, mfa.Config{})
}

// newEnvWith is newEnv with the Service configured by cfg, whose Issuer
// is set to Acme and Now to e's clock; cfg.Logger (quiet when nil) is the
// handlers' Logger too.
func newEnvWith(t *testing.T, store storage.Store, cfg mfa.Config) *env {
	t.Helper()
	if store == nil {
		store = memstore.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &env{t: t, mail: &mailertest.Recorder{}, store: store, now: time.Now().Truncate(30 * time.Second).Add(5 * time.Second)}
	cfg.Issuer, cfg.Now = "Acme", e.clock
	svc, err := mfa.New(store, e.mail, mfa.NewRandomKeyring(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.authz = newAuthz(e.clock)
	e.srv = httptest.NewServer(e.handlers(httpx.Config{Logger: cfg.Logger}).Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// handlers returns the API of e's Service (and so of e's clock), the
// OAuth way: Bearer tokens of e's identity system, and its client
// credentials (cfg.Clients, unless set).
func (e *env) handlers(cfg httpx.Config) *httpx.Handlers {
	if cfg.Clients == nil {
		cfg.Clients = e.authz
	}
	return httpx.New(e.svc, httpx.Bearer(e.authz), cfg)
}

type request struct {
	method, path, token, body, contentType, accept string
	basic                                          [2]string
	// cookie is the value of the session cookie "sid" (see cookieAuthn).
	cookie string
	// header holds more request headers, such as Origin.
	header map[string]string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) httpx.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, body %s", ct, r.body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != r.status || p.Code == "" || p.Title == "" || p.Type == "" || p.Detail == "" {
		t.Fatalf("incomplete problem %s", r.body)
	}
	return p
}

func (e *env) do(r request) response {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, e.srv.URL+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.basic[0] != "" {
		req.SetBasicAuth(r.basic[0], r.basic[1])
	}
	if r.body != "" {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "sid", Value: r.cookie})
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func expect(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if code != "" {
		if p := r.problem(t); p.Code != code {
			t.Fatalf("code = %q, want %q; body %s", p.Code, code, r.body)
		}
	}
}

const (
	qrPath      = "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR"
	verifyPath  = "/users/mfa/verifyQRCodeEnroll"
	resetMyPath = "/users/mfa/resetMyQRCodeEnroll"
	detailsPath = "/oauth/users/mfaDetails"
	enrollEmail = "/oauth/users/mfa/enrollEmail?mfatype=EMAIL"
	verifyEmail = "/oauth/users/mfa/verifyEmail"
)

func adminPath(user string) string { return "/users/" + user + "/mfa/resetQRCodeEnroll" }

// pureBarcode tells gozxing the image is nothing but a QR code on its quiet
// zone, upright, in whole square modules, as mfakit renders it: it
// reads the modules straight off the grid. Without it gozxing hunts for
// finder patterns, and that detector misreads about one valid code in a
// hundred ("NotFoundException: dimension = 31"). qr_test.go checks the
// pixels against the encoder without any decoder.
func pureBarcode() map[gozxing.DecodeHintType]any {
	return map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
}

// decodeQR reads the otpauth URI out of a QR PNG with an independent decoder.
func decodeQR(t *testing.T, pngBytes []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Fatalf("QR is %v, want 256x256", b)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, pureBarcode())
	if err != nil {
		t.Fatal(err)
	}
	return res.GetText()
}

func (e *env) codeFor(uri string, offset int64) string {
	secret, p, err := mfa.ParseKeyURI(uri)
	if err != nil {
		e.t.Fatal(err)
	}
	p.Skew = 1
	return p.Code(secret, p.Step(e.clock())+offset)
}

// wrongCode returns a code of uri's parameters that matches no step within
// two of e's now, so a test that sends it as a wrong code cannot pass it by
// chance.
func (e *env) wrongCode(uri string) string {
	e.t.Helper()
	secret, p, err := mfa.ParseKeyURI(uri)
	if err != nil {
		e.t.Fatal(err)
	}
	return wrongCodeAt(secret, p, e.clock())
}

// wrongCodeAt returns a code that matches no step of secret within two
// of now.
func wrongCodeAt(secret []byte, p mfa.TOTP, now time.Time) string {
	p.Skew = 2
	for n := 0; ; n++ {
		c := fmt.Sprintf("%0*d", p.Digits.Length(), n)
		if _, ok := p.Match(secret, c, now); !ok {
			return c
		}
	}
}

func verifyBody(f, code string) string {
	return fmt.Sprintf(`{"mfatype":%q,"totp":%q}`, f, code)
}

// enrollQR enrolls token's user through the HTTP API and returns the URI.
func (e *env) enrollQR(token string) string {
	e.t.Helper()
	return e.enrollQRAs(request{token: token})
}

// enrollQRAs enrolls through the HTTP API the user whose credentials (token
// or cookie) as holds, and returns the URI.
func (e *env) enrollQRAs(as request) string {
	e.t.Helper()
	r := e.do(request{method: "PUT", path: qrPath, token: as.token, cookie: as.cookie})
	expect(e.t, r, 200, "")
	uri := decodeQR(e.t, r.body)
	expect(e.t, e.do(request{method: "PUT", path: verifyPath, token: as.token, cookie: as.cookie,
		body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 200, "")
	return uri
}

func TestAuthenticatorJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)

	r := e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	expect(t, r, 200, "")
	if got := strings.TrimSpace(string(r.body)); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{}}` {
		t.Fatalf("fresh details = %s", got)
	}

	// PNG by default, never cached (S20); decoded independently.
	r = e.do(request{method: "PUT", path: qrPath, token: "alice-token"})
	expect(t, r, 200, "")
	if r.header.Get("Content-Type") != "image/png" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", r.header)
	}
	uri := decodeQR(t, r.body)
	if !strings.HasPrefix(uri, "otpauth://totp/Acme:alice@example.com?") {
		t.Fatalf("decoded URI %q", uri)
	}

	r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	if got := strings.TrimSpace(string(r.body)); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{"AUTHENTICATOR":{"verified":false}}}` {
		t.Fatalf("pending details = %s", got)
	}

	// A wrong code is a 400 invalid_code, the right one verifies.
	wrong := e.wrongCode(uri)
	expect(t, e.do(request{method: "PUT", path: verifyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", wrong)}), 400, "invalid_code")
	expect(t, e.do(request{method: "PUT", path: verifyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 200, "")

	r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	if got := strings.TrimSpace(string(r.body)); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{"AUTHENTICATOR":{"verified":true}}}` {
		t.Fatalf("verified details = %s", got)
	}
	if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "otpauth") {
		t.Fatal("S5: status leaks the secret")
	}
	// S7: no second enrollment without a reset; S5: the secret is not shown again.
	r = e.do(request{method: "PUT", path: qrPath, token: "alice-token", accept: "application/json"})
	expect(t, r, 409, "already_enrolled")
	if strings.Contains(string(r.body), "otpauth") {
		t.Fatal("409 leaks the key URI")
	}
	// S3 at the HTTP layer: the enrollment code cannot reset.
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 400, "code_reused")

	// Self reset with a current code (S13).
	e.advance(30 * time.Second)
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))}), 200, "")
	r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	if got := strings.TrimSpace(string(r.body)); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{}}` {
		t.Fatalf("details after reset = %s", got)
	}
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 1))}), 409, "not_enrolled")

	// JSON form of the QR: secret, URI and a data URI PNG that decodes to the URI.
	r = e.do(request{method: "PUT", path: "/oauth" + qrPath, token: "alice-token", accept: "application/json"})
	expect(t, r, 200, "")
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatal("S20: JSON QR answer may be cached")
	}
	var qr httpx.QRCodeResponse
	if err := json.Unmarshal(r.body, &qr); err != nil {
		t.Fatal(err)
	}
	data, ok := strings.CutPrefix(qr.QRCode, "data:image/png;base64,")
	if !ok {
		t.Fatalf("qrCode = %.40s", qr.QRCode)
	}
	pngBytes, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	if decodeQR(t, pngBytes) != qr.OTPAuthURL || !strings.Contains(qr.OTPAuthURL, "secret="+qr.Secret) || qr.ExpiresIn != 600 {
		t.Fatalf("JSON QR answer inconsistent: %+v", qr)
	}
	expect(t, e.do(request{method: "PUT", path: "/oauth" + verifyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(qr.OTPAuthURL, 0))}), 200, "")
}

func TestAdminReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.enrollQR("bob-token")
	expect(t, e.do(request{method: "PUT", path: adminPath("bob@example.com")}), 401, "unauthorized")
	expect(t, e.do(request{method: "PUT", path: adminPath("bob@example.com"), token: "alice-token"}), 403, "forbidden")
	for _, p := range []string{adminPath("bob@example.com"), "/oauth" + adminPath("bob@example.com"), adminPath("nobody@example.com")} {
		expect(t, e.do(request{method: "PUT", path: p, token: "admin-token"}), 200, "")
	}
	r := e.do(request{method: "GET", path: detailsPath, token: "bob-token"})
	if !strings.Contains(string(r.body), `"details":{}`) {
		t.Fatalf("bob still enrolled: %s", r.body)
	}
	// An encoded slash stays inside the username.
	expect(t, e.do(request{method: "PUT", path: "/users/a%2Fb/mfa/resetQRCodeEnroll", token: "admin-token"}), 200, "")
	expect(t, e.do(request{method: "PUT", path: adminPath(strings.Repeat("x", 400)), token: "admin-token"}), 400, "invalid_request")
}

func TestEmailJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-token"}), 200, "")
	code := e.mail.LastCode("alice@example.com")
	if code == "" {
		t.Fatal("no code mailed")
	}
	r := e.do(request{method: "PUT", path: enrollEmail, token: "alice-token"})
	expect(t, r, 429, "rate_limited")
	if r.header.Get("Retry-After") != "60" {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	if !strings.Contains(string(r.body), `"EMAIL":{"verified":false}`) {
		t.Fatalf("pending email details = %s", r.body)
	}
	expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "alice-token", body: verifyBody("AUTHENTICATOR", code)}), 400, "invalid_request")
	expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "alice-token", body: verifyBody("EMAIL", code)}), 200, "")
	r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	if !strings.Contains(string(r.body), `"EMAIL":{"verified":true}`) {
		t.Fatalf("verified email details = %s", r.body)
	}
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-token"}), 409, "already_enrolled")
	expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "bob-token", body: verifyBody("EMAIL", code)}), 409, "not_enrolled")
	expect(t, e.do(request{method: "PUT", path: "/oauth/users/mfa/enrollEmail", token: "bob-token"}), 400, "invalid_request")
	expect(t, e.do(request{method: "PUT", path: "/oauth/users/mfa/enrollEmail?mfatype=AUTHENTICATOR", token: "bob-token"}), 400, "invalid_request")
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "noemail"}), 409, "no_email")

	// Expired code.
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "bob-token"}), 200, "")
	code = e.mail.LastCode("bob@example.com")
	e.advance(11 * time.Minute)
	expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "bob-token", body: verifyBody("EMAIL", code)}), 400, "code_expired")
}

// TestLockoutOverHTTP also shows that Retry-After is counted on the
// Service's clock, which here runs a day ahead of the wall clock.
func TestLockoutOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	uri := e.enrollQR("alice-token")
	e.advance(24 * time.Hour)
	wrong := e.wrongCode(uri)
	for range 4 {
		expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", wrong)}), 400, "invalid_code")
	}
	r := e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", wrong)})
	expect(t, r, 429, "locked")
	if got := r.header.Get("Retry-After"); got != "60" {
		t.Fatalf("Retry-After = %q, want the first lockout, 60", got)
	}
	e.advance(45 * time.Second)
	r = e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", e.codeFor(uri, 0))})
	expect(t, r, 429, "locked")
	if got := r.header.Get("Retry-After"); got != "15" {
		t.Fatalf("Retry-After = %q, want the 15 s left", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	routes := []struct{ method, path string }{
		{"GET", detailsPath}, {"PUT", qrPath}, {"PUT", "/oauth" + qrPath}, {"PUT", verifyPath}, {"PUT", "/oauth" + verifyPath},
		{"POST", resetMyPath}, {"POST", "/oauth" + resetMyPath}, {"PUT", adminPath("x")}, {"PUT", "/oauth" + adminPath("x")},
		{"PUT", enrollEmail}, {"PUT", verifyEmail},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			// S18: 401 without or with bad credentials.
			r := e.do(request{method: rt.method, path: rt.path})
			expect(t, r, 401, "unauthorized")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			expect(t, e.do(request{method: rt.method, path: rt.path, token: "forged"}), 401, "unauthorized")
			// 500 from a failing Authenticator says nothing internal.
			r = e.do(request{method: rt.method, path: rt.path, token: "broken"})
			expect(t, r, 500, "internal_error")
			if strings.Contains(string(r.body), "secret detail") {
				t.Fatal("internal error text leaked")
			}
			// 405 with Allow.
			wrong := "DELETE"
			r = e.do(request{method: wrong, path: rt.path, token: "alice-token"})
			expect(t, r, 405, "method_not_allowed")
			if r.header.Get("Allow") != rt.method {
				t.Fatalf("Allow = %q", r.header.Get("Allow"))
			}
		})
	}
	expect(t, e.do(request{method: "GET", path: "/nope", token: "alice-token"}), 404, "not_found")
	expect(t, e.do(request{method: "PUT", path: "/users/mfa/associateQRCode", token: "alice-token"}), 400, "invalid_request")
	expect(t, e.do(request{method: "PUT", path: "/users/mfa/associateQRCode?mfatype=EMAIL", token: "alice-token"}), 400, "invalid_request")
	expect(t, e.do(request{method: "PUT", path: qrPath, token: "alice-token", accept: "text/html"}), 406, "not_acceptable")
}

func TestBodyValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.do(request{method: "PUT", path: qrPath, token: "alice-token"})
	cases := []struct {
		name, body, contentType string
		status                  int
		code, field             string
	}{
		{"not json", `mfatype=AUTHENTICATOR`, "application/x-www-form-urlencoded", 415, "unsupported_media_type", ""},
		{"too large", `{"mfatype":"AUTHENTICATOR","totp":"` + strings.Repeat("1", 5000) + `"}`, "", 413, "body_too_large", ""},
		{"unknown field", `{"mfatype":"AUTHENTICATOR","totp":"123456","admin":true}`, "", 400, "invalid_request", "admin"},
		{"wrong type", `{"mfatype":"AUTHENTICATOR","totp":123456}`, "", 400, "invalid_request", "totp"},
		{"missing code", `{"mfatype":"AUTHENTICATOR"}`, "", 400, "invalid_request", "totp"},
		{"letters", `{"mfatype":"AUTHENTICATOR","totp":"12a456"}`, "", 400, "invalid_request", "totp"},
		{"bad factor", `{"mfatype":"SMS","totp":"123456"}`, "", 400, "invalid_request", "mfatype"},
		{"syntax", `{"mfatype":`, "", 400, "invalid_request", ""},
		{"two objects", `{"mfatype":"AUTHENTICATOR","totp":"123456"}{}`, "", 400, "invalid_request", ""},
		{"array", `[]`, "", 400, "invalid_request", ""},
		{"null", `null`, "", 400, "invalid_request", "mfatype"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(request{method: "PUT", path: verifyPath, token: "alice-token", body: c.body, contentType: c.contentType})
			expect(t, r, c.status, c.code)
			if c.field != "" {
				p := r.problem(t)
				if len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != c.field || !strings.Contains(p.Detail, c.field) {
					t.Fatalf("problem does not name %q: %s", c.field, r.body)
				}
			}
		})
	}
	// An empty body where one is required.
	expect(t, e.do(request{method: "PUT", path: verifyPath, token: "alice-token"}), 400, "invalid_request")
}

// failingStore fails every call, to check 500 answers.
type failingStore struct{ storage.Store }

func (failingStore) Enrollments(context.Context, string) ([]storage.Enrollment, error) {
	return nil, errors.New("db: connection refused to 10.0.0.5")
}

func TestInternalErrorIsQuiet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, failingStore{memstore.New()})
	r := e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	expect(t, r, 500, "internal_error")
	if strings.Contains(string(r.body), "10.0.0.5") || strings.Contains(string(r.body), "db:") {
		t.Fatalf("internal error leaked: %s", r.body)
	}
}

// TestInternalErrorLoggedOnce: one log line per failure. The Service logs
// its own (a Store or Mailer failure, with the operation), and the
// handlers do not log it again; they log a failure that did not come from
// the Service, such as an Authenticator that is down.
func TestInternalErrorLoggedOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		store  storage.Store
		req    request
		mail   error
		status int
		want   string // in the one line
	}{
		{"store", failingStore{memstore.New()}, request{method: "GET", path: detailsPath, token: "alice-token"}, nil, 500, `"op":"status"`},
		{"mailer", nil, request{method: "PUT", path: enrollEmail, token: "bob-token"}, errors.New("smtp: 421"), 503, "email not delivered"},
		{"authorizer", nil, request{method: "GET", path: detailsPath, token: "broken"}, nil, 500, "identity backend down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var mu sync.Mutex
			e := newEnvWith(t, c.store, mfa.Config{Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
			e.mail.SetErr(c.mail)
			expect(t, e.do(c.req), c.status, "")
			mu.Lock()
			defer mu.Unlock()
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("%d log lines, want 1 with %s:\n%s", len(lines), c.want, logs.String())
			}
		})
	}
}

func TestMountUnderPrefix(t *testing.T) {
	t.Parallel()
	svc, err := mfa.New(memstore.New(), &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	httpx.New(svc, httpx.Bearer(newAuthz(time.Now)), httpx.Config{}).Mount(mux, "/mfa/")
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "host app") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/mfa/oauth/users/mfaDetails", nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, err = srv.Client().Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "host app" {
		t.Fatalf("host route answered %q", b)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	h := httpx.New(nil, httpx.Bearer(newAuthz(time.Now)), httpx.Config{})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "203.0.113.9:5555"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := h.Auth().ClientIP(r); got != "203.0.113.9" {
		t.Fatalf("untrusted peer: ClientIP = %s", got)
	}
	trusted := httpx.New(nil, httpx.Bearer(newAuthz(time.Now)), httpx.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	r.RemoteAddr = "10.0.0.1:443"
	r.Header.Set("X-Forwarded-For", "203.0.113.50, 198.51.100.1, 10.0.0.2")
	if got := trusted.Auth().ClientIP(r); got != "198.51.100.1" {
		t.Fatalf("behind trusted proxies: ClientIP = %s, want the nearest untrusted hop", got)
	}
}

type jsonRaw = json.RawMessage

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// An undeliverable code answers 503 mail_unavailable and does not block
// the next request.
func TestMailUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mail.SetErr(errors.New("smtp: 421 service not available"))
	r := e.do(request{method: "PUT", path: enrollEmail, token: "bob-token"})
	expect(t, r, 503, "mail_unavailable")
	if r.header.Get("Retry-After") == "" || strings.Contains(string(r.body), "421") {
		t.Fatalf("503 answer: %v %s", r.header, r.body)
	}
	e.mail.SetErr(nil)
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "bob-token"}), 200, "")
}

// The hand-written mfaDetails body equals what encoding/json would write.
func TestDetailsJSON(t *testing.T) {
	t.Parallel()
	for _, st := range []mfa.Status{
		{Available: []mfa.Factor{mfa.Authenticator, mfa.Email}, Details: map[mfa.Factor]mfa.FactorStatus{}},
		{Available: []mfa.Factor{mfa.Email}, Details: map[mfa.Factor]mfa.FactorStatus{mfa.Email: {Verified: true}}},
		{Available: []mfa.Factor{mfa.Authenticator, mfa.Email}, Details: map[mfa.Factor]mfa.FactorStatus{
			mfa.Email: {Verified: false}, mfa.Authenticator: {Verified: true}}},
		{Available: []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.WebAuthn}, Details: map[mfa.Factor]mfa.FactorStatus{
			mfa.WebAuthn: {Verified: true, Count: 3}, mfa.Authenticator: {Verified: true}}},
	} {
		want, _ := json.Marshal(httpx.DetailsResponse{Availables: st.Available, Details: st.Details})
		if got := httpx.AppendDetails(nil, st); string(got) != string(want)+"\n" {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

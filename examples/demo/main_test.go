package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/mfa"
)

// syncBuffer collects what the demo prints (its emails).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type demo struct {
	t   *testing.T
	srv *httptest.Server
	out *syncBuffer
	app *app
}

// startDemo starts the demo on a SQLite file in a temporary directory
// (later args override that).
func startDemo(t *testing.T, args ...string) *demo {
	t.Helper()
	args = append([]string{"-db", filepath.Join(t.TempDir(), "demo.db")}, args...)
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	a, err := newApp(o, out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	d := &demo{t: t, srv: srv, out: out, app: a}
	t.Cleanup(d.stop)
	return d
}

func (d *demo) stop() {
	d.srv.Close()
	d.app.Close()
}

func (d *demo) call(method, path, token, body string, header ...string) (int, []byte) {
	d.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, d.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := d.srv.Client().Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// grant posts a token request with the demo client's credentials and
// returns the status and the decoded JSON answer.
func (d *demo) grant(form url.Values) (int, map[string]any) {
	d.t.Helper()
	req, _ := http.NewRequest("POST", d.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo-client", "demo-secret")
	resp, err := d.srv.Client().Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// login signs in with a password only and returns the access token.
func (d *demo) login(user, password string) string {
	d.t.Helper()
	status, out := d.grant(url.Values{"grant_type": {"password"}, "username": {user}, "password": {password}})
	tok, _ := out["access_token"].(string)
	if status != 200 || tok == "" || out["token_type"] != "bearer" || out["expires_in"] != 3600.0 {
		d.t.Fatalf("login %s: status %d, %v", user, status, out)
	}
	return tok
}

// challenge signs in with a password and returns the state_token object.
func (d *demo) challenge(user, password string) map[string]any {
	d.t.Helper()
	status, out := d.grant(url.Values{"grant_type": {"password"}, "username": {user}, "password": {password}})
	st, ok := out["state_token"].(map[string]any)
	// The token's expiry is kept to the second, so a second boundary
	// between issuing it and writing the answer leaves 599 seconds.
	fresh := func(v any) bool { return v == 600.0 || v == 599.0 || v == "600" || v == "599" }
	if status != 200 || !ok || !fresh(out["expires_in"]) || !fresh(st["expires_in"]) || st["status"] != "VERIFY" {
		d.t.Fatalf("password grant %s: status %d, %v", user, status, out)
	}
	return st
}

// complete sends grant_type=state_token and returns status and answer.
func (d *demo) complete(token, code string, extra ...string) (int, map[string]any) {
	d.t.Helper()
	form := url.Values{"grant_type": {"state_token"}, "state_token": {token}, "totp": {code}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return d.grant(form)
}

// basic calls path with the demo client's credentials and a JSON body.
func (d *demo) basic(method, path, body string) (int, []byte) {
	d.t.Helper()
	return d.call(method, path, "", body, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("demo-client:demo-secret")))
}

var printedCode = regexp.MustCompile(`verification code is:\s+(\d{6})`)

// lastPrintedCode returns the code of the newest email the demo printed.
func (d *demo) lastPrintedCode() string {
	all := printedCode.FindAllStringSubmatch(d.out.String(), -1)
	if len(all) == 0 {
		d.t.Fatalf("no code printed:\n%s", d.out.String())
	}
	return all[len(all)-1][1]
}

func currentCode(t *testing.T, uri string) string {
	secret, p, err := mfa.ParseKeyURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return p.Code(secret, p.Step(time.Now()))
}

func codeAt(t *testing.T, uri string, offset int64) string {
	secret, p, err := mfa.ParseKeyURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return p.Code(secret, p.Step(time.Now())+offset)
}

// TestDemoJourney drives the whole product over HTTP: enrollment, the
// login challenge, step-up, email, recovery codes, the lost-phone reset and
// the admin reset (issues #2 and #6).
func TestDemoJourney(t *testing.T) {
	d := startDemo(t, "-email-interval", "1ms")
	alice := d.login("alice@example.com", "alice-password") // no factor yet: password only
	admin := d.login("admin@example.com", "admin-password")

	// Enroll the authenticator.
	status, body := d.call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", alice, "", "Accept", "application/json")
	if status != 200 {
		t.Fatalf("QR: %d %s", status, body)
	}
	var qr struct{ Secret, OTPAuthURL string }
	json.Unmarshal(body, &qr)
	if status, body = d.call("PUT", "/users/mfa/verifyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, codeAt(t, qr.OTPAuthURL, 0))); status != 200 {
		t.Fatalf("verify: %d %s", status, body)
	}

	// Adding a second factor on a password-only session needs a step-up.
	if status, body = d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", alice, ""); status != 401 || !strings.Contains(string(body), "mfa_required") {
		t.Fatalf("enrollEmail without step-up: %d %s", status, body)
	}

	// Login: password -> state token -> code -> access token.
	st := d.challenge("alice@example.com", "alice-password")
	if st["mfaType"] != "AUTHENTICATOR" {
		t.Fatalf("state token = %v", st)
	}
	token := st["token"].(string)
	if status, out := d.complete(token, "000000"); status != 400 || out["code"] != "invalid_code" {
		if codeAt(t, qr.OTPAuthURL, 1) != "000000" {
			t.Fatalf("wrong code: %d %v", status, out)
		}
	}
	// The enrollment code's step is used; the next step's code signs in.
	status, out := d.complete(token, codeAt(t, qr.OTPAuthURL, 1))
	alice2, _ := out["access_token"].(string)
	if status != 200 || alice2 == "" {
		t.Fatalf("state_token grant: %d %v", status, out)
	}
	if status, out = d.complete(token, codeAt(t, qr.OTPAuthURL, 1)); status != 400 || out["code"] != "invalid_token" {
		t.Fatalf("state token used twice: %d %v", status, out)
	}

	// With the MFA session: email factor, verified from the printed email.
	if status, body = d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", alice2, ""); status != 200 {
		t.Fatalf("enrollEmail: %d %s", status, body)
	}
	printed := d.out.String()
	if !strings.Contains(printed, "To:      alice@example.com") || !strings.Contains(printed, "text/html") {
		t.Fatalf("printed email:\n%s", printed)
	}
	if status, body = d.call("PUT", "/oauth/users/mfa/verifyEmail", alice2, fmt.Sprintf(`{"mfatype":"EMAIL","totp":%q}`, d.lastPrintedCode())); status != 200 {
		t.Fatalf("verifyEmail: %d %s", status, body)
	}
	_, body = d.call("GET", "/oauth/users/mfaDetails", alice2, "")
	if got := strings.TrimSpace(string(body)); got != `{"availables":["AUTHENTICATOR","EMAIL","WEBAUTHN"],"details":{"AUTHENTICATOR":{"verified":true},"EMAIL":{"verified":true}}}` {
		t.Fatalf("details = %s", got)
	}

	// Recovery codes: step-up required, shown once, counted.
	if status, _ = d.call("POST", "/oauth/users/mfa/recoveryCodes", alice, ""); status != 401 {
		t.Fatalf("recovery codes without step-up: %d", status)
	}
	status, body = d.call("POST", "/oauth/users/mfa/recoveryCodes", alice2, "")
	var rc struct{ RecoveryCodes []string }
	if json.Unmarshal(body, &rc); status != 200 || len(rc.RecoveryCodes) != 10 {
		t.Fatalf("recovery codes: %d %s", status, body)
	}
	if _, body = d.call("GET", "/oauth/users/mfa/recoveryCodes", alice2, ""); !strings.Contains(string(body), `"remaining":10`) {
		t.Fatalf("remaining: %s", body)
	}

	// Lost phone: a password alone never resets (S13)...
	st = d.challenge("alice@example.com", "alice-password")
	if status, body = d.basic("POST", "/users/mfa/resetMyQRCodeEnroll", fmt.Sprintf(`{"stateToken":%q,"mfatype":"EMAIL","password":"alice-password"}`, st["token"])); status != 400 {
		t.Fatalf("reset with a password: %d %s", status, body)
	}
	// ...but the state token switched to EMAIL plus the emailed code does.
	status, body = d.basic("PUT", "/oauth/users/mfa/challenge?mfatype=EMAIL", fmt.Sprintf(`{"stateToken":%q}`, st["token"]))
	var sw struct {
		StateToken map[string]any `json:"state_token"`
	}
	if json.Unmarshal(body, &sw); status != 200 || sw.StateToken["mfaType"] != "EMAIL" {
		t.Fatalf("switch to EMAIL: %d %s", status, body)
	}
	if status, body = d.basic("POST", "/users/mfa/resetMyQRCodeEnroll", fmt.Sprintf(`{"stateToken":%q,"mfatype":"EMAIL","totp":%q}`, sw.StateToken["token"], d.lastPrintedCode())); status != 200 {
		t.Fatalf("lost-phone reset: %d %s", status, body)
	}
	_, body = d.call("GET", "/oauth/users/mfaDetails", alice2, "")
	if strings.Contains(string(body), "AUTHENTICATOR\":{") {
		t.Fatalf("after lost-phone reset: %s", body)
	}

	// The next login is an EMAIL challenge; a recovery code completes it, once.
	status, out = d.grant(url.Values{"grant_type": {"password"}, "username": {"alice@example.com"}, "password": {"alice-password"}})
	st = out["state_token"].(map[string]any)
	if st["mfaType"] != "EMAIL" {
		t.Fatalf("state token after reset = %v", st)
	}
	if status, out = d.complete(st["token"].(string), rc.RecoveryCodes[0], "mfatype", "RECOVERY"); status != 200 {
		t.Fatalf("recovery login: %d %v", status, out)
	}

	// Admin reset.
	d.call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", alice2, "")
	if status, _ = d.call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", alice, ""); status != 403 {
		t.Fatalf("non-admin reset: %d", status)
	}
	if status, _ = d.call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", admin, ""); status != 200 {
		t.Fatalf("admin reset: %d", status)
	}
}

// A restarted demo on the same SQLite file and key still knows alice's
// verified authenticator, and her app's codes still work (issue #3).
func TestDemoSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "demo.db")
	d := startDemo(t, "-db", db)
	alice := d.login("alice@example.com", "alice-password")
	_, body := d.call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", alice, "", "Accept", "application/json")
	var qr struct{ OTPAuthURL string }
	json.Unmarshal(body, &qr)
	secret, p, _ := mfa.ParseKeyURI(qr.OTPAuthURL)
	step := p.Step(time.Now())
	if status, body := d.call("PUT", "/users/mfa/verifyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, p.Code(secret, step))); status != 200 {
		t.Fatalf("verify: %d %s", status, body)
	}
	d.stop()
	if _, err := os.Stat(db + ".key"); err != nil {
		t.Fatalf("no key file beside the database: %v", err)
	}

	d2 := startDemo(t, "-db", db)
	st := d2.challenge("alice@example.com", "alice-password") // the restarted demo knows her factor
	if st["mfaType"] != "AUTHENTICATOR" {
		t.Fatalf("after restart: %v", st)
	}
	status, out := d2.complete(st["token"].(string), p.Code(secret, step+1))
	if alice, _ = out["access_token"].(string); status != 200 || alice == "" {
		t.Fatalf("MFA login after restart: %d %v", status, out)
	}
	_, body = d2.call("GET", "/oauth/users/mfaDetails", alice, "")
	if !strings.Contains(string(body), `"AUTHENTICATOR":{"verified":true}`) {
		t.Fatalf("after restart: %s", body)
	}
	// The MFA login above proved the sealed secret still opens; the steps
	// used stay used across the restart.
	for _, used := range []int64{step, step + 1} {
		if status, _ := d2.call("POST", "/users/mfa/resetMyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, p.Code(secret, used))); status != 400 {
			t.Fatalf("replay of step %d after restart: %d", used, status)
		}
	}
}

func TestDemoInMemoryAndPostgres(t *testing.T) {
	d := startDemo(t, "-db", "")
	if d.app.storageName != "memory" {
		t.Fatalf("storage = %s", d.app.storageName)
	}
	d.login("alice@example.com", "alice-password")
	// A schema of its own, dropped at the end: the demo's tables (default
	// names) never meet another run's users, so the test can run again.
	dsn := testdb.PostgresSchemaDSN(t) // skips without MFAKIT_POSTGRES_DSN
	pg := startDemo(t, "-db", dsn, "-key-file", filepath.Join(t.TempDir(), "k"))
	if pg.app.storageName != "postgres" {
		t.Fatalf("storage = %s", pg.app.storageName)
	}
	tok := pg.login("alice@example.com", "alice-password")
	if status, body := pg.call("GET", "/oauth/users/mfaDetails", tok, ""); status != 200 {
		t.Fatalf("details on postgres: %d %s", status, body)
	}
}

// The demo on Redis (-db redis://...): enrollment, a wrong code at sign-in,
// then the right one, through the store's autopipelined hot path. It uses
// database 15 and deletes its keys there.
func TestDemoRedis(t *testing.T) {
	rdb := testdb.Redis(t) // skips without MFAKIT_REDIS_ADDR
	addr := rdb.(*redis.Client).Options().Addr
	db15 := redis.NewClient(&redis.Options{Addr: addr, DB: 15})
	t.Cleanup(func() { db15.Close() })
	for _, k := range testdb.RedisKeys(t, db15, "mfakit:*") { // left by a run that was killed
		db15.Del(context.Background(), k)
	}
	testdb.DeleteRedisKeys(t, db15, "mfakit:") // at the end
	d := startDemo(t, "-db", "redis://"+addr+"/15", "-key-file", filepath.Join(t.TempDir(), "k"))
	if d.app.storageName != "redis" {
		t.Fatalf("storage = %s", d.app.storageName)
	}
	alice := d.login("alice@example.com", "alice-password")
	status, body := d.call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", alice, "", "Accept", "application/json")
	if status != 200 {
		t.Fatalf("QR: %d %s", status, body)
	}
	var qr struct{ OTPAuthURL string }
	json.Unmarshal(body, &qr)
	if status, body = d.call("PUT", "/users/mfa/verifyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, codeAt(t, qr.OTPAuthURL, 0))); status != 200 {
		t.Fatalf("verify: %d %s", status, body)
	}
	token := d.challenge("alice@example.com", "alice-password")["token"].(string)
	if wrong := "000000"; codeAt(t, qr.OTPAuthURL, 1) != wrong {
		if status, out := d.complete(token, wrong); status != 400 || out["code"] != "invalid_code" {
			t.Fatalf("wrong code: %d %v", status, out)
		}
	}
	if status, out := d.complete(token, codeAt(t, qr.OTPAuthURL, 1)); status != 200 || out["access_token"] == nil {
		t.Fatalf("sign-in: %d %v", status, out)
	}
	if keys := testdb.RedisKeys(t, db15, "mfakit:*"); len(keys) == 0 {
		t.Fatal("the demo wrote no key to database 15")
	}
}

func TestDemoBadKeyFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.key"), []byte("not hex"), 0o600)
	o, _ := parseFlags([]string{"-db", filepath.Join(dir, "x.db"), "-key-file", filepath.Join(dir, "bad.key")}, io.Discard)
	if _, err := newApp(o, io.Discard); err == nil || !strings.Contains(err.Error(), "key file") {
		t.Fatalf("bad key file: %v", err)
	}
}

func TestDemoTokenEndpoint(t *testing.T) {
	d := startDemo(t, "-users", "me@example.com:pw:ROLE_USER", "-clients", "c1:s1")
	form := "grant_type=password&username=me@example.com&password=wrong"
	for _, c := range []struct {
		user, pass, form string
		want             int
	}{
		{"c1", "s1", form, 401},
		{"c1", "bad", "grant_type=password&username=me@example.com&password=pw", 401},
		{"c1", "s1", "grant_type=client_credentials", 400},
		{"c1", "s1", "grant_type=state_token&state_token=v1.x.AUTHENTICATOR.1.y&totp=123456", 400},
		{"c1", "s1", "grant_type=password&username=me@example.com&password=pw", 200},
	} {
		req, _ := http.NewRequest("POST", d.srv.URL+"/oauth/token", strings.NewReader(c.form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.user, c.pass)
		resp, err := d.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%+v: status %d", c, resp.StatusCode)
		}
	}
	if status, _ := d.call("GET", "/oauth/token", "", ""); status != 405 {
		t.Fatalf("GET /oauth/token: %d", status)
	}
}

func TestDemoFlags(t *testing.T) {
	for _, bad := range [][]string{
		{"-users", "nopassword"}, {"-clients", "noseparator"}, {"-users", ""},
	} {
		o, err := parseFlags(bad, io.Discard)
		if err == nil {
			_, err = newApp(o, io.Discard)
		}
		if err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-nope"}, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
}

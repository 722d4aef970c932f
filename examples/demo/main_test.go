package main

import (
	"bytes"
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

func (d *demo) login(user, password string) string {
	d.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {password}}
	req, _ := http.NewRequest("POST", d.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo-client", "demo-secret")
	resp, err := d.srv.Client().Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok tokenResponse
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.TokenType != "bearer" || tok.ExpiresIn != 3600 {
		d.t.Fatalf("login %s: status %d, %+v", user, resp.StatusCode, tok)
	}
	return tok.AccessToken
}

func currentCode(t *testing.T, uri string) string {
	secret, p, err := mfa.ParseKeyURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return p.Code(secret, p.Step(time.Now()))
}

func TestDemoJourney(t *testing.T) {
	d := startDemo(t)
	alice := d.login("alice@example.com", "alice-password")
	admin := d.login("admin@example.com", "admin-password")

	status, body := d.call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", alice, "", "Accept", "application/json")
	if status != 200 {
		t.Fatalf("QR: %d %s", status, body)
	}
	var qr struct{ Secret, OtpauthURL string }
	json.Unmarshal(body, &qr)
	code := currentCode(t, qr.OtpauthURL)
	if status, body = d.call("PUT", "/users/mfa/verifyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, code)); status != 200 {
		t.Fatalf("verify: %d %s", status, body)
	}

	// Email: the code is printed in full, as a person would read it.
	if status, body = d.call("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", alice, ""); status != 200 {
		t.Fatalf("enrollEmail: %d %s", status, body)
	}
	printed := d.out.String()
	m := regexp.MustCompile(`verification code is:\s+(\d{6})`).FindStringSubmatch(printed)
	if m == nil || !strings.Contains(printed, "To:      alice@example.com") || !strings.Contains(printed, "text/html") {
		t.Fatalf("printed email:\n%s", printed)
	}
	if status, body = d.call("PUT", "/oauth/users/mfa/verifyEmail", alice, fmt.Sprintf(`{"mfatype":"EMAIL","totp":%q}`, m[1])); status != 200 {
		t.Fatalf("verifyEmail: %d %s", status, body)
	}
	_, body = d.call("GET", "/oauth/users/mfaDetails", alice, "")
	if got := strings.TrimSpace(string(body)); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{"AUTHENTICATOR":{"verified":true},"EMAIL":{"verified":true}}}` {
		t.Fatalf("details = %s", got)
	}

	if status, _ = d.call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", alice, ""); status != 403 {
		t.Fatalf("non-admin reset: %d", status)
	}
	if status, _ = d.call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", admin, ""); status != 200 {
		t.Fatalf("admin reset: %d", status)
	}
	_, body = d.call("GET", "/oauth/users/mfaDetails", alice, "")
	if strings.Contains(string(body), "AUTHENTICATOR\":{") {
		t.Fatalf("after admin reset: %s", body)
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
	var qr struct{ OtpauthURL string }
	json.Unmarshal(body, &qr)
	secret, p, _ := mfa.ParseKeyURI(qr.OtpauthURL)
	step := p.Step(time.Now())
	if status, body := d.call("PUT", "/users/mfa/verifyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, p.Code(secret, step))); status != 200 {
		t.Fatalf("verify: %d %s", status, body)
	}
	d.stop()
	if _, err := os.Stat(db + ".key"); err != nil {
		t.Fatalf("no key file beside the database: %v", err)
	}

	d2 := startDemo(t, "-db", db)
	alice = d2.login("alice@example.com", "alice-password")
	_, body = d2.call("GET", "/oauth/users/mfaDetails", alice, "")
	if !strings.Contains(string(body), `"AUTHENTICATOR":{"verified":true}`) {
		t.Fatalf("after restart: %s", body)
	}
	// The step used before the restart stays used; the next one proves the
	// sealed secret still opens.
	if status, _ := d2.call("POST", "/users/mfa/resetMyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, p.Code(secret, step))); status != 400 {
		t.Fatalf("replay after restart: %d", status)
	}
	if status, body := d2.call("POST", "/users/mfa/resetMyQRCodeEnroll", alice, fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, p.Code(secret, step+1))); status != 200 {
		t.Fatalf("reset with the next code after restart: %d %s", status, body)
	}
}

func TestDemoInMemoryAndPostgres(t *testing.T) {
	d := startDemo(t, "-db", "")
	if d.app.storageName != "memory" {
		t.Fatalf("storage = %s", d.app.storageName)
	}
	d.login("alice@example.com", "alice-password")
	dsn := os.Getenv("MFAKIT_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("MFAKIT_POSTGRES_DSN is not set: skipping the PostgreSQL demo")
	}
	pg := startDemo(t, "-db", dsn, "-key-file", filepath.Join(t.TempDir(), "k"))
	if pg.app.storageName != "postgres" {
		t.Fatalf("storage = %s", pg.app.storageName)
	}
	tok := pg.login("alice@example.com", "alice-password")
	if status, body := pg.call("GET", "/oauth/users/mfaDetails", tok, ""); status != 200 {
		t.Fatalf("details on postgres: %d %s", status, body)
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

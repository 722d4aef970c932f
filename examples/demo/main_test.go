package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
}

func startDemo(t *testing.T, args ...string) *demo {
	t.Helper()
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	a, err := newApp(o, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &demo{t: t, srv: srv, out: out}
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

package exampleapp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// Journey runs a full enrollment against a server at base: QR code, code,
// verified, admin reset, and the checks in between, failing t on any
// surprise. prefix is where the host mounted the kit ("" for the root).
func Journey(t *testing.T, base, prefix string) {
	t.Helper()
	call := func(method, path, token, body, accept string) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+prefix+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	details := func() string {
		t.Helper()
		status, b := call("GET", "/oauth/users/mfaDetails", "alice-token", "", "")
		if status != 200 {
			t.Fatalf("mfaDetails: %d %s", status, b)
		}
		return strings.TrimSpace(string(b))
	}
	if status, _ := call("GET", "/oauth/users/mfaDetails", "", "", ""); status != 401 {
		t.Fatalf("mfaDetails without a token: %d", status)
	}
	status, b := call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", "alice-token", "", "application/json")
	if status != 200 {
		t.Fatalf("associateQRCode: %d %s", status, b)
	}
	var qr struct{ Secret, OTPAuthURL string }
	if err := json.Unmarshal(b, &qr); err != nil || qr.Secret == "" {
		t.Fatalf("QR answer %s: %v", b, err)
	}
	secret, p, err := mfa.ParseKeyURI(qr.OTPAuthURL)
	if err != nil {
		t.Fatal(err)
	}
	code := p.Code(secret, p.Step(time.Now()))
	if status, b = call("PUT", "/users/mfa/verifyQRCodeEnroll", "alice-token", fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, code), ""); status != 200 {
		t.Fatalf("verifyQRCodeEnroll: %d %s", status, b)
	}
	if got := details(); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{"AUTHENTICATOR":{"verified":true}}}` {
		t.Fatalf("details after verify: %s", got)
	}
	if status, _ = call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", "alice-token", "", ""); status != 403 {
		t.Fatalf("admin reset by alice: %d", status)
	}
	if status, b = call("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", "admin-token", "", ""); status != 200 {
		t.Fatalf("admin reset: %d %s", status, b)
	}
	if got := details(); got != `{"availables":["AUTHENTICATOR","EMAIL"],"details":{}}` {
		t.Fatalf("details after admin reset: %s", got)
	}
	if status, _ = call("DELETE", "/oauth/users/mfa/verifyEmail", "alice-token", "", ""); status != 405 && status != 404 {
		t.Fatalf("wrong method: %d", status)
	}
}

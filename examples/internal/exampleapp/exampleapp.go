// Package exampleapp is what the framework examples share: the kit on an
// in-memory store, fixed Bearer tokens, the decoding of path
// parameters their adapters need, and the enrollment journey and checks
// their tests drive through each framework's router.
package exampleapp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// Tokens maps the example bearer tokens to their users. A real host plugs
// its own sessions in through an httpx.Authenticator, or its OAuth tokens
// through httpx.Bearer.
var Tokens = map[string]httpx.User{
	"alice-token": {Username: "alice@example.com", Email: "alice@example.com", Roles: []string{"ROLE_USER"}},
	"admin-token": {Username: "admin@example.com", Email: "admin@example.com", Roles: []string{"ROLE_ADMIN_CUSTOMER"}},
}

// tokens resolves the example bearer tokens (httpx.TokenAuthenticator).
type tokens struct{}

func (tokens) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	u, ok := Tokens[token]
	if !ok {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return u, nil
}

// NewAPI returns the kit's handlers on a fresh in-memory store; emails are
// printed to stdout.
func NewAPI() (*httpx.Handlers, error) {
	svc, err := mfa.New(memstore.New(), &mailer.Writer{W: os.Stdout}, mfa.NewRandomKeyring(), mfa.Config{Issuer: "mfakit example"})
	if err != nil {
		return nil, err
	}
	return httpx.New(svc, httpx.Bearer(tokens{}), httpx.Config{}), nil
}

// SetPathValue sets the path parameter name of r to value, as a router
// matched it, decoded as net/http's ServeMux decodes {name} (see
// DecodePathValue). A malformed escape gets a 400 answer, and SetPathValue
// reports false.
func SetPathValue(w http.ResponseWriter, r *http.Request, name, value string, escaped bool) bool {
	v, p := DecodePathValue(name, value, escaped)
	if p != nil {
		httpx.WriteProblem(w, p)
		return false
	}
	r.SetPathValue(name, v)
	return true
}

// DecodePathValue returns the path parameter name, as a router matched
// it, decoded as net/http's ServeMux decodes {name}, or the 400 problem
// of a malformed escape. escaped says that the router matched on the
// escaped path, so value is still percent-encoded: chi and echo do when
// the request's path differs from its default encoding (r.URL.RawPath is
// set), fiber always. Passed on undecoded, an admin reset of
// /users/alice%40example.com/... would act on "alice%40example.com", a
// user with nothing to remove, and answer 200; decoded twice, a user
// "a%40b" would become "a@b".
func DecodePathValue(name, value string, escaped bool) (string, *httpx.Problem) {
	if !escaped {
		return value, nil
	}
	v, err := url.PathUnescape(value)
	if err != nil {
		return "", httpx.NewProblem(http.StatusBadRequest, httpx.CodeInvalidRequest,
			"path parameter "+name+": malformed percent-encoding")
	}
	return v, nil
}

// ColonPath turns a ServeMux pattern ("/users/{username}/...") into the
// ":name" syntax of gin, echo and fiber ("/users/:username/...").
func ColonPath(p string) string { return colonPath.Replace(p) }

var colonPath = strings.NewReplacer("{", ":", "}", "")

// EscapedReset checks, against a server at base with the kit under
// prefix, that the admin reset reads {username} percent-decoded, once:
// /users/alice%40example.com/... removes alice@example.com's
// authenticator, /users/alice%2540example.com/... (the user
// "alice%40example.com") does not, and a malformed escape is refused.
func EscapedReset(t *testing.T, base, prefix string) {
	t.Helper()
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+prefix+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	const verified = `{"availables":["AUTHENTICATOR","EMAIL"],"details":{"AUTHENTICATOR":{"verified":true}}}`
	details := func(want, when string) {
		t.Helper()
		if status, got := call("GET", "/oauth/users/mfaDetails", "alice-token", ""); status != 200 || got != want {
			t.Fatalf("alice's status %s: %d %s", when, status, got)
		}
	}
	status, b := call("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", "alice-token", "")
	var qr struct{ OTPAuthURL string }
	if err := json.Unmarshal([]byte(b), &qr); status != 200 || err != nil {
		t.Fatalf("associateQRCode: %d %s", status, b)
	}
	secret, p, err := mfa.ParseKeyURI(qr.OTPAuthURL)
	if err != nil {
		t.Fatal(err)
	}
	code := p.Code(secret, p.Step(time.Now()))
	if status, b = call("PUT", "/users/mfa/verifyQRCodeEnroll", "alice-token", fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":%q}`, code)); status != 200 {
		t.Fatalf("verifyQRCodeEnroll: %d %s", status, b)
	}
	details(verified, "after verify")

	// Decoded once only: this names the user "alice%40example.com".
	if status, b = call("PUT", "/users/alice%2540example.com/mfa/resetQRCodeEnroll", "admin-token", ""); status != 200 && status != 400 {
		t.Fatalf("admin reset of alice%%2540example.com: %d %s", status, b)
	}
	details(verified, "after an admin reset of alice%2540example.com")

	if status := rawStatus(t, base, "PUT "+prefix+"/users/alice%zz/mfa/resetQRCodeEnroll"); status != 400 {
		t.Fatalf("admin reset with a malformed escape: %d", status)
	}
	details(verified, "after an admin reset with a malformed escape")

	if status, b = call("PUT", "/users/alice%40example.com/mfa/resetQRCodeEnroll", "admin-token", ""); status != 200 {
		t.Fatalf("admin reset of alice%%40example.com: %d %s", status, b)
	}
	details(`{"availables":["AUTHENTICATOR","EMAIL"],"details":{}}`, "after an admin reset of alice%40example.com")
}

// rawStatus sends "METHOD target" as the admin, byte for byte (a client
// would refuse a malformed target), and returns the answer's status.
func rawStatus(t *testing.T, base, request string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer admin-token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", request, u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

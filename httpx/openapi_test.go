package httpx_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/mfakit/mfakit/httpx"
)

// TestOpenAPI validates the embedded document, then sends requests to
// every route and checks each real request and response against it.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpx.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	doc.Servers = nil // the document's server is relative ("/"): match paths on any host
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}

	e, _ := newWebAuthnEnv(t)
	covered := map[string]bool{}
	var last []byte // the body of the last answer check saw
	check := func(method, path, token, body, accept string, basic bool) int {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if basic {
			req.SetBasicAuth("demo-client", "demo-secret")
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s is not in the document: %v", method, path, err)
		}
		covered[route.Method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		req.Body = http.NoBody // the validation read it
		if body != "" {
			req.Body = io.NopCloser(strings.NewReader(body))
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = b
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
			Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("%s %s → %d does not match the document: %v\n%s", method, path, resp.StatusCode, err, b)
		}
		return resp.StatusCode
	}

	check("GET", "/oauth/users/mfaDetails", "alice-token", "", "", false)
	check("GET", "/oauth/users/mfaDetails", "", "", "", false)
	check("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", "alice-token", "", "", false)
	r := e.do(request{method: "PUT", path: "/oauth/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", token: "alice-token", accept: "application/json"})
	uri := jsonField(t, r.body, "otpauthUrl")
	check("PUT", "/users/mfa/verifyQRCodeEnroll", "alice-token", verifyBody("AUTHENTICATOR", e.wrongCode(uri)), "", false)
	check("PUT", "/oauth/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", "alice-token", "", "application/json", false)
	check("PUT", "/users/mfa/associateQRCode?mfatype=EMAIL", "alice-token", "", "", false)
	r = e.do(request{method: "PUT", path: "/oauth/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", token: "alice-token", accept: "application/json"})
	uri = jsonField(t, r.body, "otpauthUrl")
	if got := check("PUT", "/oauth/users/mfa/verifyQRCodeEnroll", "alice-token", verifyBody("AUTHENTICATOR", e.codeFor(uri, 0)), "", false); got != 200 {
		t.Fatalf("verify: %d", got)
	}
	check("PUT", "/oauth/users/mfa/verify", "alice-token", verifyBody("AUTHENTICATOR", e.codeFor(uri, 1)), "", false)
	check("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", "alice-token", "", "application/json", false)
	check("GET", "/oauth/users/mfa/recoveryCodes", "alice-token", "", "", false)
	check("POST", "/oauth/users/mfa/recoveryCodes", "alice-mfa", "", "", false)
	check("POST", "/oauth/users/mfa/recoveryCodes", "alice-token", "", "", false)
	check("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", "alice-mfa", "", "", false)
	check("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", "alice-mfa", "", "", false) // throttled
	check("PUT", "/oauth/users/mfa/verifyEmail", "alice-mfa", verifyBody("EMAIL", e.mail.LastCode("alice@example.com")), "", false)
	check("PUT", "/oauth/users/mfa/challenge?mfatype=EMAIL", "", `{"stateToken":"v1.x"}`, "", true)
	check("POST", "/users/mfa/resetMyQRCodeEnroll", "alice-token", verifyBody("AUTHENTICATOR", e.wrongCode(uri)), "", false)
	check("POST", "/oauth/users/mfa/resetMyQRCodeEnroll", "", `{"username":"bob@example.com","mfatype":"AUTHENTICATOR","totp":"000000"}`, "", true)
	check("PUT", "/users/alice@example.com/mfa/resetQRCodeEnroll", "alice-token", "", "", false)
	check("PUT", "/oauth/users/alice@example.com/mfa/resetQRCodeEnroll", "admin-token", "", "", false)
	check("PUT", "/users/mfa/verifyQRCodeEnroll", "alice-token", `{"mfatype":"AUTHENTICATOR","totp":"1","x":1}`, "", false)

	// Passkeys. Alice holds EMAIL: a passkey needs a step-up.
	check("PUT", "/oauth/users/mfa/associateWebAuthn?mfatype=WEBAUTHN", "alice-token", "", "", false)
	if got := check("PUT", "/users/mfa/associateWebAuthn?mfatype=WEBAUTHN", "alice-mfa", "", "", false); got != 200 {
		t.Fatalf("associateWebAuthn: %d %s", got, last)
	}
	pk := newPasskey()
	if got := check("PUT", "/users/mfa/verifyWebAuthnEnroll", "alice-token", enrollBody("Phone", pk.register(t, last)), "", false); got != 200 {
		t.Fatalf("verifyWebAuthnEnroll: %d %s", got, last)
	}
	id := jsonField(t, last, "id")
	check("PUT", "/oauth/users/mfa/associateWebAuthn?mfatype=WEBAUTHN", "alice-mfa", `{"mfatype":"WEBAUTHN"}`, "", false)
	check("PUT", "/oauth/users/mfa/verifyWebAuthnEnroll", "alice-mfa", enrollBody("Key", newPasskey().register(t, last)), "", false)
	check("PUT", "/oauth/users/mfa/verifyWebAuthnEnroll", "alice-mfa", `{"mfatype":"WEBAUTHN","credential":{"id":"AAAA"}}`, "", false)
	check("PUT", "/users/mfa/verifyWebAuthnEnroll", "alice-mfa", `{"mfatype":"WEBAUTHN","credential":"x"}`, "", false)
	check("GET", "/oauth/users/mfa/webauthn", "alice-token", "", "", false)
	check("GET", "/oauth/users/mfaDetails", "alice-token", "", "", false)
	if got := check("PUT", "/oauth/users/mfa/webauthn/challenge", "alice-token", "", "", false); got != 200 {
		t.Fatalf("webauthn challenge: %d %s", got, last)
	}
	if got := check("PUT", "/oauth/users/mfa/verify", "alice-token", credentialBody(pk.assert(t, last)), "", false); got != 200 {
		t.Fatalf("verify with a passkey: %d %s", got, last)
	}
	check("PUT", "/oauth/users/mfa/verify", "alice-token", credentialBody(pk.assert(t, e.checkOptions("alice-token"))[:40]+`"}`), "", false)
	ch, err := e.svc.StartChallenge(ctx, "alice@example.com", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := check("PUT", "/oauth/users/mfa/challenge?mfatype=WEBAUTHN", "", `{"stateToken":"`+ch.Token+`"}`, "", true); got != 200 {
		t.Fatalf("switch to WEBAUTHN: %d %s", got, last)
	}
	token := jsonField(t, []byte(jsonField(t, last, "state_token")), "token")
	check("PUT", "/oauth/users/mfa/challenge?mfatype=AUTHENTICATOR", "", `{"stateToken":"`+token+`"}`, "", true)
	check("POST", "/oauth/users/mfa/resetMyQRCodeEnroll", "alice-token", credentialBody(pk.assert(t, e.checkOptions("alice-token"))), "", false)
	check("DELETE", "/oauth/users/mfa/webauthn/"+id, "alice-token", "", "", false)
	check("DELETE", "/oauth/users/mfa/webauthn/AAAA", "alice-mfa", "", "", false)
	check("DELETE", "/oauth/users/mfa/webauthn/"+id, "alice-mfa", "", "", false)
	check("GET", "/oauth/users/mfa/webauthn", "", "", "", false)

	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !covered[method+" "+path] {
				t.Errorf("no exchange checked %s %s", method, path)
			}
		}
	}
}

package httpx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/mfa/mfatest"
	"github.com/mfakit/mfakit/storage"
)

// The WebAuthn routes.
const (
	associateWebAuthnPath = "/users/mfa/associateWebAuthn?mfatype=WEBAUTHN"
	verifyWebAuthnPath    = "/users/mfa/verifyWebAuthnEnroll"
	credentialsPath       = "/oauth/users/mfa/webauthn"
	webAuthnCheckPath     = "/oauth/users/mfa/webauthn/challenge"
	checkPath             = "/oauth/users/mfa/verify"
)

// testRP is the relying party the browser of these tests is at.
var testRP = virtualwebauthn.RelyingParty{Name: "Acme", ID: "example.com", Origin: "https://example.com"}

// passkey is a software authenticator with one credential.
type passkey struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newPasskey() *passkey {
	return &passkey{rp: testRP, auth: virtualwebauthn.NewAuthenticator(), cred: newCredential()}
}

// newCredential is virtualwebauthn.NewCredential(KeyTypeEC2) for a key
// whose coordinates both take 32 bytes: virtualwebauthn drops their
// leading zeros, which a verifier rightly refuses.
func newCredential() virtualwebauthn.Credential {
	for {
		c := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(c.Key.Data)
		if err != nil {
			panic(err)
		}
		if pub := k.(*ecdsa.PrivateKey).PublicKey; len(pub.X.Bytes()) == 32 && len(pub.Y.Bytes()) == 32 {
			return c
		}
	}
}

// clone returns a copy of p that signs with the same key.
func (p *passkey) clone() *passkey { c := *p; return &c }

// register answers creation options ({"publicKey":...}) as the browser's
// create() and toJSON() would.
func (p *passkey) register(t testing.TB, options []byte) string {
	t.Helper()
	opts, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		t.Fatalf("creation options %s: %v", options, err)
	}
	p.auth.Options.UserHandle = []byte(opts.UserID)
	return virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts)
}

// assert answers request options (with or without "publicKey" around
// them) as get() would; a counting authenticator counts up first.
func (p *passkey) assert(t testing.TB, options []byte) string {
	t.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		t.Fatalf("request options %s: %v", options, err)
	}
	if p.cred.Counter > 0 {
		p.cred.Counter++
	}
	return virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts)
}

func enrollBody(name, credential string) string {
	n, _ := json.Marshal(name)
	return `{"mfatype":"WEBAUTHN","name":` + string(n) + `,"credential":` + credential + `}`
}

func credentialBody(credential string) string {
	return `{"mfatype":"WEBAUTHN","credential":` + credential + `}`
}

// newWebAuthnEnv is newEnvWith with passkeys on, for testRP, and an
// event recorder.
func newWebAuthnEnv(t *testing.T) (*env, *mfatest.Recorder) {
	events := &mfatest.Recorder{}
	e := newEnvWith(t, nil, mfa.Config{Events: events,
		WebAuthn: &mfa.WebAuthnConfig{RPID: testRP.ID, RPOrigins: []string{testRP.Origin}}})
	return e, events
}

// addPasskey registers a passkey for the user of token over HTTP.
func (e *env) addPasskey(token, name string) (*passkey, string) {
	e.t.Helper()
	r := e.do(request{method: "PUT", path: associateWebAuthnPath, token: token})
	expect(e.t, r, 200, "")
	p := newPasskey()
	r = e.do(request{method: "PUT", path: verifyWebAuthnPath, token: token, body: enrollBody(name, p.register(e.t, r.body))})
	expect(e.t, r, 200, "")
	return p, jsonField(e.t, r.body, "id")
}

// checkOptions asks for step-up request options for the user of token.
func (e *env) checkOptions(token string) []byte {
	e.t.Helper()
	r := e.do(request{method: "PUT", path: webAuthnCheckPath, token: token})
	expect(e.t, r, 200, "")
	return r.body
}

func TestWebAuthnJourney(t *testing.T) { // S31, S33
	t.Parallel()
	e, events := newWebAuthnEnv(t)
	const alice = "alice@example.com"

	// The first factor needs no step-up.
	r := e.do(request{method: "PUT", path: associateWebAuthnPath, token: "alice-token"})
	expect(t, r, 200, "")
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", r.header)
	}
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      struct{ ID, Name string }
			RP        struct{ ID string }
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(r.body, &opts); err != nil || opts.PublicKey.RP.ID != "example.com" ||
		opts.PublicKey.User.Name != alice || strings.Contains(opts.PublicKey.User.ID, "alice") || len(opts.PublicKey.Challenge) < 43 {
		t.Fatalf("options %s", r.body)
	}
	phone := newPasskey()
	phone.cred.Counter = 1
	r = e.do(request{method: "PUT", path: verifyWebAuthnPath, token: "alice-token", body: enrollBody("Phone", phone.register(t, r.body))})
	expect(t, r, 200, "")
	id := base64.RawURLEncoding.EncodeToString(phone.cred.ID)
	if got := strings.TrimSpace(string(r.body)); got != `{"mfatype":"WEBAUTHN","verified":true,"id":"`+id+`"}` {
		t.Fatalf("verify answer %s", got)
	}
	r = e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
	if got := strings.TrimSpace(string(r.body)); got != `{"availables":["AUTHENTICATOR","EMAIL","WEBAUTHN"],"details":{"WEBAUTHN":{"verified":true,"count":1}}}` {
		t.Fatalf("details %s", got)
	}

	// A second passkey is a second factor: it needs a recent MFA.
	expect(t, e.do(request{method: "PUT", path: associateWebAuthnPath, token: "alice-token"}), 401, "mfa_required")
	expect(t, e.do(request{method: "PUT", path: associateWebAuthnPath, token: "alice-stale"}), 401, "mfa_required")
	e.advance(time.Second)
	key, keyID := e.addPasskey("alice-mfa", "")
	r = e.do(request{method: "GET", path: credentialsPath, token: "alice-token"})
	expect(t, r, 200, "")
	var list httpx.CredentialsResponse
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Credentials) != 2 || list.Credentials[0].ID != id ||
		list.Credentials[0].Name != "Phone" || list.Credentials[1].ID != keyID || list.Credentials[1].Name != "Passkey" ||
		list.Credentials[0].LastUsedAt != nil || !strings.Contains(string(r.body), `"lastUsedAt":null`) {
		t.Fatalf("list %s", r.body)
	}

	// Sign-in: the passkey is asked for first, with its request options.
	e.enrollQR("alice-mfa")
	ch, err := e.svc.StartChallenge(context.Background(), alice, alice)
	if err != nil {
		t.Fatal(err)
	}
	resp := httpx.NewChallengeResponse(ch, e.clock())
	b, _ := json.Marshal(resp)
	var answer struct {
		StateToken struct {
			MFAType   string          `json:"mfaType"`
			Token     string          `json:"token"`
			PublicKey json.RawMessage `json:"publicKey"`
		} `json:"state_token"`
	}
	json.Unmarshal(b, &answer)
	if answer.StateToken.MFAType != "WEBAUTHN" || !strings.Contains(string(answer.StateToken.PublicKey), id) ||
		!strings.Contains(string(answer.StateToken.PublicKey), `"allowCredentials"`) {
		t.Fatalf("state token answer %s", b)
	}
	h := e.handlers(httpx.Config{})
	form := url.Values{"grant_type": {"state_token"}, "state_token": {answer.StateToken.Token}, "mfatype": {"WEBAUTHN"},
		"credential": {phone.assert(t, answer.StateToken.PublicKey)}}
	r = e.grant(t, h, form)
	expect(t, r, 200, "")
	if !strings.Contains(string(r.body), `"Factor":"WEBAUTHN"`) {
		t.Fatalf("grant %s", r.body)
	}
	expect(t, e.grant(t, h, form), 400, "invalid_token") // single use

	// The cookie app's CompleteSignIn takes the same, as JSON.
	ch, _ = e.svc.StartChallenge(context.Background(), alice, alice)
	body := `{"stateToken":"` + ch.Token + `","credential":` + key.assert(t, ch.PublicKey) + `}`
	expect(t, post(t, signInAt(t, h), "/", "application/json", body, nil), 200, "")

	// Step-up in the session.
	r = e.do(request{method: "PUT", path: checkPath, token: "alice-token", body: credentialBody(phone.assert(t, e.checkOptions("alice-token")))})
	expect(t, r, 200, "")
	if got := strings.TrimSpace(string(r.body)); got != `{"mfatype":"WEBAUTHN","verified":true}` {
		t.Fatalf("check %s", got)
	}
	r = e.do(request{method: "GET", path: credentialsPath, token: "alice-token"})
	json.Unmarshal(r.body, &list)
	if list.Credentials[0].LastUsedAt == nil || !list.Credentials[0].LastUsedAt.Equal(e.clock().Truncate(time.Second)) &&
		!list.Credentials[0].LastUsedAt.Equal(e.clock()) {
		t.Fatalf("after use %s", r.body)
	}

	// Removal needs a recent MFA.
	expect(t, e.do(request{method: "DELETE", path: credentialsPath + "/" + id, token: "alice-token"}), 401, "mfa_required")
	expect(t, e.do(request{method: "DELETE", path: credentialsPath + "/not*base64", token: "alice-mfa"}), 400, "invalid_request")
	expect(t, e.do(request{method: "DELETE", path: credentialsPath + "/AAAA", token: "alice-mfa"}), 404, "not_found")
	r = e.do(request{method: "DELETE", path: credentialsPath + "/" + id, token: "alice-mfa"})
	expect(t, r, 200, "")
	if got := strings.TrimSpace(string(r.body)); got != `{"mfatype":"WEBAUTHN","verified":true,"id":"`+id+`"}` {
		t.Fatalf("delete %s", got)
	}
	expect(t, e.do(request{method: "DELETE", path: credentialsPath + "/" + id, token: "alice-mfa"}), 404, "not_found")
	if n := events.Count(alice, mfa.WebAuthn, mfa.EventCredentialRemoved); n != 1 {
		t.Fatalf("%d credential_removed events", n)
	}
	if msg, ok := e.mail.Last(alice); !ok || !strings.Contains(msg.Text, "removed a passkey named \u201cPhone\u201d") {
		t.Fatalf("notice %+v", msg)
	}
	expect(t, e.do(request{method: "POST", path: credentialsPath, token: "alice-mfa"}), 405, "method_not_allowed")
}

// TestWebAuthnRefusedOverHTTP: each route's failures get their problem
// code, and nothing is stored (S31, S32).
func TestWebAuthnRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	e, events := newWebAuthnEnv(t)
	ctx := context.Background()
	const alice = "alice@example.com"
	begin := func(token string) []byte {
		t.Helper()
		r := e.do(request{method: "PUT", path: associateWebAuthnPath, token: token})
		expect(t, r, 200, "")
		return r.body
	}
	enroll := func(token, body string) response {
		return e.do(request{method: "PUT", path: verifyWebAuthnPath, token: token, body: body})
	}
	evil := newPasskey()
	evil.rp.Origin = "https://evil.example.org"
	expect(t, enroll("alice-token", enrollBody("", evil.register(t, begin("alice-token")))), 400, "invalid_credential")
	other := newPasskey()
	other.rp.ID = "example.org"
	expect(t, enroll("alice-token", enrollBody("", other.register(t, begin("alice-token")))), 400, "invalid_credential")
	// Bob's options answered in alice's session.
	expect(t, enroll("alice-token", enrollBody("", newPasskey().register(t, begin("bob-token")))), 400, "invalid_credential")
	// Expired, by the Service's clock.
	opts := begin("alice-token")
	e.advance(5*time.Minute + time.Second)
	expect(t, enroll("alice-token", enrollBody("", newPasskey().register(t, opts))), 400, "challenge_expired")
	// Malformed bodies name the field.
	for _, c := range []struct{ body, param string }{
		{`{"mfatype":"WEBAUTHN"}`, "credential"},
		{`{"mfatype":"WEBAUTHN","credential":"{}"}`, "credential"},
		{`{"mfatype":"WEBAUTHN","credential":null}`, "credential"},
		{`{"mfatype":"WEBAUTHN","credential":[1]}`, "credential"},
		{`{"mfatype":"AUTHENTICATOR","credential":{}}`, "mfatype"},
		{`{"mfatype":"WEBAUTHN","name":"a\nb","credential":{}}`, "name"},
		{`{"mfatype":"WEBAUTHN","credential":{"id":"a","id":"b"}}`, "credential.id"},
		{`{"mfatype":"WEBAUTHN","credential":{},"Name":"x"}`, "Name"},
	} {
		r := enroll("alice-token", c.body)
		expect(t, r, 400, "invalid_request")
		if p := r.problem(t); len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != c.param {
			t.Errorf("%s: %s", c.body, r.body)
		}
	}
	expect(t, enroll("alice-token", `{"mfatype":"WEBAUTHN","credential":{"id":"AAAA"}}`), 400, "invalid_credential")
	expect(t, enroll("alice-token", `{"mfatype":"WEBAUTHN","credential":{"x":"`+strings.Repeat("a", 17<<10)+`"}}`), 413, "body_too_large")
	if st, _ := e.svc.Status(ctx, alice); len(st.Details) != 0 {
		t.Fatalf("stored after refusals: %+v", st)
	}
	// Replay, and the same authenticator for another user (S32).
	p := newPasskey()
	p.cred.Counter = 7
	reg := p.register(t, begin("alice-token"))
	expect(t, enroll("alice-token", enrollBody("Key", reg)), 200, "")
	expect(t, enroll("alice-token", enrollBody("Key", reg)), 400, "invalid_credential")
	expect(t, enroll("bob-token", enrollBody("", p.clone().register(t, begin("bob-token")))), 409, "credential_exists")
	bobKey := newPasskey()
	expect(t, enroll("bob-token", enrollBody("", bobKey.register(t, begin("bob-token")))), 200, "")

	// Assertions at the step-up route.
	check := func(credential string) response {
		return e.do(request{method: "PUT", path: checkPath, token: "alice-token", body: credentialBody(credential)})
	}
	unlock := func() { e.store.ResetAttempts(ctx, alice, mfa.WebAuthn) }
	q := p.clone()
	q.rp.Origin = "https://evil.example.org"
	expect(t, check(q.assert(t, e.checkOptions("alice-token"))), 400, "invalid_credential")
	expect(t, check(bobKey.assert(t, e.checkOptions("alice-token"))), 400, "invalid_credential")
	unlock()
	good := p.assert(t, e.checkOptions("alice-token"))
	e.advance(5*time.Minute + time.Second)
	expect(t, check(good), 400, "challenge_expired")
	good = p.assert(t, e.checkOptions("alice-token"))
	expect(t, check(good), 200, "")
	expect(t, check(good), 400, "invalid_credential") // replayed
	unlock()
	// A copy of the key that is behind (S32).
	behind := p.clone()
	behind.cred.Counter = 2
	expect(t, check(behind.assert(t, e.checkOptions("alice-token"))), 400, "clone_suspected")
	if n := events.Count(alice, mfa.WebAuthn, mfa.EventCloneSuspected); n != 1 {
		t.Fatalf("%d clone_suspected events", n)
	}
	creds, _ := e.store.(storage.CredentialStore).Credentials(ctx, alice)
	if creds[0].SignCount != p.cred.Counter {
		t.Fatalf("stored counter %d, the genuine key's %d", creds[0].SignCount, p.cred.Counter)
	}
	for _, c := range []struct{ body, param string }{
		{`{"mfatype":"WEBAUTHN"}`, "credential"},
		{`{"mfatype":"WEBAUTHN","credential":"x"}`, "credential"},
		{`{"mfatype":"WEBAUTHN","totp":"123456","credential":{}}`, "totp"},
		{`{"mfatype":"AUTHENTICATOR","credential":{}}`, "credential"},
		{`{"mfatype":"EMAIL","totp":"123456"}`, "mfatype"},
	} {
		r := e.do(request{method: "PUT", path: checkPath, token: "alice-token", body: c.body})
		expect(t, r, 400, "invalid_request")
		if p := r.problem(t); p.InvalidParams[0].Name != c.param {
			t.Errorf("%s: %s", c.body, r.body)
		}
	}
	// The sign-in's fields.
	ch, _ := e.svc.StartChallenge(ctx, alice, alice)
	h := e.handlers(httpx.Config{})
	for _, c := range []struct {
		form  url.Values
		param string
	}{
		{url.Values{"mfatype": {"WEBAUTHN"}}, "credential"},
		{url.Values{"credential": {"[]"}}, "credential"},
		{url.Values{"credential": {"{}"}, "totp": {"123456"}}, "totp"},
		{url.Values{"credential": {"{}"}, "mfatype": {"RECOVERY"}}, "credential"},
		{url.Values{"credential": {"{}", "{}"}}, "credential"},
		{url.Values{"credential": {`{"id":"a","response":{"x":1,"x":2}}`}}, "credential.response.x"},
		{url.Values{"mfatype": {"SMS"}}, "mfatype"},
	} {
		c.form.Set("grant_type", "state_token")
		c.form.Set("state_token", ch.Token)
		r := e.grant(t, h, c.form)
		expect(t, r, 400, "invalid_request")
		if p := r.problem(t); p.InvalidParams[0].Name != c.param {
			t.Errorf("%v: %s", c.form, r.body)
		}
	}
	// A WEBAUTHN token does not take a TOTP code, and a wrong assertion
	// leaves it usable.
	expect(t, e.grant(t, h, url.Values{"grant_type": {"state_token"}, "state_token": {ch.Token}, "totp": {"123456"}}), 400, "invalid_request")
	expect(t, e.grant(t, h, url.Values{"grant_type": {"state_token"}, "state_token": {ch.Token},
		"credential": {q.assert(t, ch.PublicKey)}}), 400, "invalid_credential")
	expect(t, e.grant(t, h, url.Values{"grant_type": {"state_token"}, "state_token": {ch.Token},
		"credential": {p.assert(t, ch.PublicKey)}}), 200, "")
}

// TestWebAuthnBurst: of 100 concurrent wrong assertions at the step-up
// route at most MaxFailures are verified; the rest get 429 (S22, S33).
func TestWebAuthnBurst(t *testing.T) {
	t.Parallel()
	e, events := newWebAuthnEnv(t)
	p, _ := e.addPasskey("alice-token", "Phone")
	wrong := p.clone()
	wrong.cred.Key = newCredential().Key
	bad := credentialBody(wrong.assert(t, e.checkOptions("alice-token")))
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 100 {
		wg.Go(func() {
			r := e.do(request{method: "PUT", path: checkPath, token: "alice-token", body: bad})
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	max := e.svc.Config().MaxFailures
	if n := events.Count("alice@example.com", mfa.WebAuthn, mfa.EventFailure); n > max || statuses[400] > max || statuses[429] < 100-max {
		t.Fatalf("%d verified, answers %v; at most %d may be verified", n, statuses, max)
	}
	r := e.do(request{method: "PUT", path: checkPath, token: "alice-token", body: credentialBody(p.assert(t, e.checkOptions("alice-token")))})
	expect(t, r, 429, "locked")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// TestWebAuthnProofs: a passkey proves a factor for the self reset of the
// authenticator, in a session and with a sign-in's state token (S13), and
// a sign-in can switch between the user's factors.
func TestWebAuthnProofs(t *testing.T) {
	t.Parallel()
	e, _ := newWebAuthnEnv(t)
	ctx := context.Background()
	const alice = "alice@example.com"
	p, _ := e.addPasskey("alice-token", "Phone")
	e.enrollQR("alice-mfa")
	body := `{"mfatype":"WEBAUTHN","credential":` + p.assert(t, e.checkOptions("alice-token")) + `}`
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: body}), 200, "")
	if st, _ := e.svc.Status(ctx, alice); st.Details[mfa.Authenticator].Verified {
		t.Fatal("authenticator still there")
	}
	expect(t, e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: `{"mfatype":"WEBAUTHN"}`}), 400, "invalid_request")

	// Lost phone: the state token names the user, the passkey proves it.
	e.enrollQR("alice-mfa")
	ch, _ := e.svc.StartChallenge(ctx, alice, alice)
	body = `{"stateToken":"` + ch.Token + `","mfatype":"WEBAUTHN","credential":` + p.assert(t, ch.PublicKey) + `}`
	expect(t, e.do(request{method: "POST", path: resetMyPath, basic: [2]string{"demo-client", "demo-secret"}, body: body}), 200, "")

	// Switching: WEBAUTHN → AUTHENTICATOR → WEBAUTHN (fresh options).
	e.enrollQR("alice-mfa")
	ch, _ = e.svc.StartChallenge(ctx, alice, alice)
	sw := func(token, to string) response {
		return e.do(request{method: "PUT", path: "/oauth/users/mfa/challenge?mfatype=" + to,
			basic: [2]string{"demo-client", "demo-secret"}, body: `{"stateToken":"` + token + `"}`})
	}
	r := sw(ch.Token, "AUTHENTICATOR")
	expect(t, r, 200, "")
	var answer httpx.ChallengeResponse
	json.Unmarshal(r.body, &answer)
	if answer.StateToken.MFAType != mfa.Authenticator || answer.StateToken.PublicKey != nil {
		t.Fatalf("switched %s", r.body)
	}
	r = sw(answer.StateToken.Token, "WEBAUTHN")
	expect(t, r, 200, "")
	json.Unmarshal(r.body, &answer)
	if answer.StateToken.MFAType != mfa.WebAuthn || len(answer.StateToken.PublicKey) == 0 {
		t.Fatalf("switched back %s", r.body)
	}
	expect(t, sw(answer.StateToken.Token, "SMS"), 400, "invalid_request")
	h := e.handlers(httpx.Config{})
	expect(t, e.grant(t, h, url.Values{"grant_type": {"state_token"}, "state_token": {answer.StateToken.Token},
		"credential": {p.assert(t, answer.StateToken.PublicKey)}}), 200, "")
}

// TestWebAuthnDisabled: without mfa.Config.WebAuthn the passkey routes
// answer factor_disabled and mfaDetails does not list WEBAUTHN.
func TestWebAuthnDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, c := range []request{
		{method: "PUT", path: associateWebAuthnPath},
		{method: "PUT", path: verifyWebAuthnPath, body: enrollBody("", "{}")},
		{method: "GET", path: credentialsPath},
		{method: "PUT", path: webAuthnCheckPath},
		{method: "PUT", path: checkPath, body: credentialBody("{}")},
	} {
		c.token = "alice-token"
		expect(t, e.do(c), 400, "factor_disabled")
	}
	expect(t, e.do(request{method: "DELETE", path: credentialsPath + "/AAAA", token: "alice-mfa"}), 400, "factor_disabled")
	expect(t, e.do(request{method: "PUT", path: associateWebAuthnPath, token: ""}), 401, "unauthorized")
}

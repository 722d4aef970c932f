package httpx_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// fuzzKit is the whole API on a memstore of its own, with quiet logs, its
// own Authenticator and a fixed clock, so alice's MFA time never goes stale
// however long a fuzz run lasts. Alice has a pending authenticator and a
// pending email enrollment, so well-formed codes reach the comparison.
// Passkeys are on: bob holds one, with a live step-up challenge and a
// sign-in in progress (token), so well-formed assertions reach
// verification.
type fuzzKit struct {
	api   *httpx.Handlers
	svc   *mfa.Service
	h     http.Handler
	store *memstore.Store
	// passkey is bob's; token is his sign-in's state token.
	passkey *passkey
	token   string
}

func newFuzzKit(f *testing.F) *fuzzKit {
	now := time.Now()
	clock := func() time.Time { return now }
	store := memstore.New()
	svc, err := mfa.New(store, &mailertest.Recorder{}, mfa.NewRandomKeyring(),
		mfa.Config{Now: clock, Logger: slog.New(slog.DiscardHandler), EmailHourlyLimit: 1 << 30,
			WebAuthn: &mfa.WebAuthnConfig{RPID: testRP.ID, RPOrigins: []string{testRP.Origin}}})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.BeginAuthenticator(ctx, "alice@example.com"); err != nil {
		f.Fatal(err)
	}
	if err := svc.BeginEmail(ctx, "alice@example.com", "alice@example.com"); err != nil {
		f.Fatal(err)
	}
	k := &fuzzKit{svc: svc, store: store, passkey: newPasskey()}
	opts, err := svc.BeginWebAuthnEnrollment(ctx, "bob@example.com", "")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := svc.FinishWebAuthnEnrollment(ctx, "bob@example.com", "Key", []byte(k.passkey.register(f, opts))); err != nil {
		f.Fatal(err)
	}
	if _, err := svc.BeginWebAuthnCheck(ctx, "bob@example.com"); err != nil {
		f.Fatal(err)
	}
	ch, err := svc.StartChallenge(ctx, "bob@example.com", "")
	if err != nil {
		f.Fatal(err)
	}
	k.token = ch.Token
	az := newAuthz(clock)
	k.api = httpx.New(svc, httpx.Bearer(az), httpx.Config{Clients: az, Logger: slog.New(slog.DiscardHandler)})
	k.h = k.api.Handler()
	return k
}

// unlock forgets alice's and bob's failures, so no input meets a lockout
// that earlier inputs caused.
func (k *fuzzKit) unlock(t *testing.T) {
	for _, u := range []string{"alice@example.com", "bob@example.com"} {
		for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.Recovery, mfa.WebAuthn} {
			if err := k.store.ResetAttempts(context.Background(), u, f); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fuzzBody sends body to one route and checks the answer is a deliberate
// one (S19): no panic, no 500, and a problem+json body on every error.
func fuzzBody(f *testing.F, method, path string, basic bool) {
	k := newFuzzKit(f)
	f.Add([]byte(`{"mfatype":"AUTHENTICATOR","totp":"123456"}`), "application/json")
	f.Add([]byte(`{"mfatype":"EMAIL","totp":"123456"}`), "application/json; charset=utf-8")
	f.Add([]byte(`{"username":"alice@example.com","mfatype":"RECOVERY","totp":"ABCD-EFGH-JKMN-PQRS"}`), "application/json")
	f.Add([]byte(`{"stateToken":"v1.YWxpY2U.AUTHENTICATOR.1.eA","mfatype":"EMAIL","totp":"000000"}`), "application/json")
	f.Add([]byte(`{"totp":123456,"mfatype":null}`), "application/json")
	f.Add([]byte(`{"mfatype":"AUTHENTICATOR","totp":"123456","x":1}`), "application/json")
	f.Add([]byte(`[{"mfatype":"\u0000"}]`), "application/json")
	f.Add([]byte(strings.Repeat(`{"a":`, 100)), "application/json")
	f.Add([]byte("mfatype=EMAIL"), "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		k.unlock(t)
		req := httptest.NewRequest(method, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		if basic {
			req.SetBasicAuth("demo-client", "demo-secret")
		} else {
			req.Header.Set("Authorization", "Bearer alice-mfa")
		}
		rec := httptest.NewRecorder()
		k.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("error %d without problem+json", rec.Code)
		}
	})
}

func FuzzVerifyQRCodeEnroll(f *testing.F) { fuzzBody(f, "PUT", verifyPath, false) }
func FuzzVerifyEmail(f *testing.F)        { fuzzBody(f, "PUT", verifyEmail, false) }
func FuzzResetMyQRCodeEnroll(f *testing.F) {
	fuzzBody(f, "POST", resetMyPath, true)
}
func FuzzAssociateQRCode(f *testing.F) { fuzzBody(f, "PUT", qrPath, false) }
func FuzzSwitchChallenge(f *testing.F) {
	fuzzBody(f, "PUT", "/oauth/users/mfa/challenge?mfatype=EMAIL", true)
}

// FuzzStateTokenGrant feeds arbitrary forms to the state_token grant.
func FuzzStateTokenGrant(f *testing.F) {
	k := newFuzzKit(f)
	f.Add("grant_type=state_token&state_token=v1.YWxpY2U.AUTHENTICATOR.1.eA&totp=123456")
	f.Add("grant_type=state_token&state_token=v1.....&totp=&mfatype=RECOVERY")
	f.Add("grant_type=state_token&state_token=%ff%fe&totp=1&mfatype=SMS")
	f.Add("grant_type=password")
	f.Fuzz(func(t *testing.T, form string) {
		req := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_, err := k.api.StateTokenGrant(req)
		if err == nil {
			t.Fatalf("a made-up state token was accepted: %q", form)
		}
		if p := httpx.ProblemFor(err); p.Status >= 500 {
			t.Fatalf("internal error for %q: %v", form, err)
		}
	})
}

// FuzzVerifyWebAuthnEnroll sends arbitrary bodies to verifyWebAuthnEnroll
// in a session with a live registration challenge: never a panic or a
// 500, a problem+json on every error, and nothing stored unless the
// answer is 200 (S19, S31).
func FuzzVerifyWebAuthnEnroll(f *testing.F) {
	k := newFuzzKit(f)
	ctx := context.Background()
	opts, err := k.svc.BeginWebAuthnEnrollment(ctx, "alice@example.com", "")
	if err != nil {
		f.Fatal(err)
	}
	reg := newPasskey().register(f, opts)
	f.Add([]byte(enrollBody("Phone", reg)), "application/json")
	f.Add([]byte(enrollBody("", reg[:len(reg)/2])), "application/json")
	f.Add([]byte(`{"mfatype":"WEBAUTHN","credential":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}}`), "application/json")
	f.Add([]byte(`{"mfatype":"WEBAUTHN","name":"\u202eevil","credential":{}}`), "application/json")
	f.Add([]byte(`{"mfatype":"WEBAUTHN","credential":"{}"}`), "application/json")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		before, _ := k.store.Credentials(ctx, "alice@example.com")
		req := httptest.NewRequest("PUT", verifyWebAuthnPath, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer alice-mfa")
		rec := httptest.NewRecorder()
		k.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("error %d without problem+json", rec.Code)
		}
		after, _ := k.store.Credentials(ctx, "alice@example.com")
		if rec.Code != 200 && len(after) != len(before) {
			t.Fatalf("a credential was stored with answer %d for %q", rec.Code, body)
		}
	})
}

// FuzzWebAuthnAssertion feeds arbitrary assertions (the credential of an
// AuthenticationResponseJSON) to every place that takes one: the step-up
// route, the state_token grant of a WEBAUTHN sign-in, and the Service.
// Never a panic or an internal error, and never a success (bob's live
// challenges are answered by no input but a real signature).
func FuzzWebAuthnAssertion(f *testing.F) {
	k := newFuzzKit(f)
	good := k.passkey.clone()
	f.Add([]byte(good.assert(f, []byte(`{"challenge":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))))
	f.Add([]byte(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{}}`))
	f.Add([]byte(`{"id":"AAAA","id":"AAAA"}`))
	f.Add([]byte(`123456`))
	f.Fuzz(func(t *testing.T, credential []byte) {
		k.unlock(t)
		ctx := context.Background()
		body := `{"mfatype":"WEBAUTHN","credential":` + string(credential) + `}`
		req := httptest.NewRequest("PUT", "/oauth/users/mfa/verify", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer bob-token")
		rec := httptest.NewRecorder()
		k.h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code == 200 {
			t.Fatalf("status %d for %q: %s", rec.Code, credential, rec.Body)
		}
		if rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("error %d without problem+json", rec.Code)
		}
		form := url.Values{"grant_type": {"state_token"}, "state_token": {k.token}, "mfatype": {"WEBAUTHN"},
			"credential": {string(credential)}}
		req = httptest.NewRequest("POST", "/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := k.api.StateTokenGrant(req); err == nil || httpx.ProblemFor(err).Status >= 500 {
			t.Fatalf("grant with %q: %v", credential, err)
		}
		if err := k.svc.CheckWebAuthn(ctx, "bob@example.com", credential); err == nil || errors.Is(err, mfa.ErrInternal) {
			t.Fatalf("CheckWebAuthn(%q): %v", credential, err)
		}
	})
}

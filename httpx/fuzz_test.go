package httpx_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// fuzzKit is the whole API on a memstore of its own, with quiet logs, its
// own Authenticator and a fixed clock, so alice's MFA time never goes stale
// however long a fuzz run lasts. Alice has a pending authenticator and a
// pending email enrollment, so well-formed codes reach the comparison.
type fuzzKit struct {
	api   *httpx.Handlers
	h     http.Handler
	store storage.Store
}

func newFuzzKit(f *testing.F) *fuzzKit {
	now := time.Now()
	clock := func() time.Time { return now }
	store := memstore.New()
	svc, err := mfa.New(store, &mailertest.Recorder{}, mfa.NewRandomKeyring(),
		mfa.Config{Now: clock, Logger: slog.New(slog.DiscardHandler), EmailHourlyLimit: 1 << 30})
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
	az := newAuthz(clock)
	api := httpx.New(svc, httpx.Bearer(az), httpx.Config{Clients: az, Logger: slog.New(slog.DiscardHandler)})
	return &fuzzKit{api: api, h: api.Handler(), store: store}
}

// unlock forgets alice's failures, so no input meets a lockout that
// earlier inputs caused.
func (k *fuzzKit) unlock(t *testing.T) {
	for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.Recovery} {
		if err := k.store.ResetAttempts(context.Background(), "alice@example.com", f); err != nil {
			t.Fatal(err)
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

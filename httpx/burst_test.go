package httpx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/mfa/mfatest"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// burstAuthz authenticates "Bearer u:<username>" as that user and the
// client demo-client:demo-secret.
type burstAuthz struct{}

func (burstAuthz) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	name, ok := strings.CutPrefix(token, "u:")
	if !ok || name == "" {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return httpx.User{Username: name, Email: name, Roles: []string{"ROLE_USER"}, MFAAt: time.Now()}, nil
}

func (burstAuthz) AuthenticateClient(_ context.Context, id, secret string) error {
	if id != "demo-client" || secret != "demo-secret" {
		return httpx.ErrUnauthorized
	}
	return nil
}

// kit is one instance of the kit behind a real HTTP server, with a token
// endpoint for the state_token grant at /token.
type kit struct {
	srv    *httptest.Server
	svc    *mfa.Service
	mail   *mailertest.Recorder
	events *mfatest.Recorder
}

// newKits starts one kit per store; they share one keyring, as the
// instances of one deployment do.
func newKits(t *testing.T, stores ...storage.Store) []*kit {
	t.Helper()
	keys := mfa.NewRandomKeyring()
	var kits []*kit
	for _, st := range stores {
		k := &kit{mail: &mailertest.Recorder{}, events: &mfatest.Recorder{}}
		cfg := mfa.Config{Issuer: "Acme", Events: k.events, Logger: slog.New(slog.DiscardHandler)}
		if _, ok := st.(storage.CredentialStore); ok { // passkeys wherever the backend keeps them
			cfg.WebAuthn = &mfa.WebAuthnConfig{RPID: testRP.ID, RPOrigins: []string{testRP.Origin}}
		}
		svc, err := mfa.New(st, k.mail, keys, cfg)
		if err != nil {
			t.Fatal(err)
		}
		k.svc = svc
		h := httpx.New(svc, httpx.Bearer(burstAuthz{}), httpx.Config{Clients: burstAuthz{}, Logger: slog.New(slog.DiscardHandler)})
		mux := http.NewServeMux()
		mux.Handle("/", h.Handler())
		mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
			res, err := h.StateTokenGrant(r)
			if err != nil {
				httpx.DefaultErrorHandler(w, r, err)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"user": res.User})
		})
		k.srv = httptest.NewServer(mux)
		t.Cleanup(k.srv.Close)
		kits = append(kits, k)
	}
	return kits
}

// call sends one request and returns its status.
func (k *kit) call(t *testing.T, method, path, bearer, contentType, body string) int {
	req, err := http.NewRequest(method, k.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.srv.Client().Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// attempt is one code check through HTTP.
type attempt func(k *kit, code string) int

// burstPath is a code-checking path set up for one user: the factor its
// failures count against, a wrong code for the i-th request, the right
// code, and the request.
type burstPath struct {
	name   string
	factor mfa.Factor
	setup  func(t *testing.T, kits []*kit, user string) (wrong func(i int) string, right string, send attempt)
}

const jsonType = "application/json"

func body(factor mfa.Factor, code string) string {
	return fmt.Sprintf(`{"mfatype":%q,"totp":%q}`, factor, code)
}

// enrollDirect enrolls user's authenticator through the domain and returns
// the secret and its parameters.
func enrollDirect(t *testing.T, svc *mfa.Service, user string) ([]byte, mfa.TOTP) {
	t.Helper()
	ctx := context.Background()
	key, err := svc.BeginAuthenticator(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	secret, p, err := mfa.ParseKeyURI(key.URI)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.VerifyAuthenticator(ctx, user, p.Code(secret, p.Step(time.Now())-1)); err != nil {
		t.Fatal(err)
	}
	return secret, p
}

// wrongTOTP returns codes that match no step in the window.
func wrongTOTP(secret []byte, p mfa.TOTP) func(int) string {
	return func(i int) string {
		for n := i; ; n += 1000 {
			c := fmt.Sprintf("%06d", (n*7919+13)%1000000)
			if _, ok := p.Match(secret, c, time.Now()); !ok {
				return c
			}
		}
	}
}

var burstPaths = []burstPath{
	{"Authenticator", mfa.Authenticator, func(t *testing.T, kits []*kit, user string) (func(int) string, string, attempt) {
		secret, p := enrollDirect(t, kits[0].svc, user)
		send := func(k *kit, code string) int {
			return k.call(t, "PUT", "/oauth/users/mfa/verify", "u:"+user, jsonType, body(mfa.Authenticator, code))
		}
		return wrongTOTP(secret, p), p.Code(secret, p.Step(time.Now())+1), send
	}},
	{"Email", mfa.Email, func(t *testing.T, kits []*kit, user string) (func(int) string, string, attempt) {
		if err := kits[0].svc.BeginEmail(context.Background(), user, user); err != nil {
			t.Fatal(err)
		}
		right := kits[0].mail.LastCode(user)
		wrong := func(i int) string {
			c := fmt.Sprintf("%06d", (i*7919+13)%1000000)
			if c == right {
				c = fmt.Sprintf("%06d", (i*7919+14)%1000000)
			}
			return c
		}
		send := func(k *kit, code string) int {
			return k.call(t, "PUT", "/oauth/users/mfa/verifyEmail", "u:"+user, jsonType, body(mfa.Email, code))
		}
		return wrong, right, send
	}},
	{"Recovery", mfa.Recovery, func(t *testing.T, kits []*kit, user string) (func(int) string, string, attempt) {
		enrollDirect(t, kits[0].svc, user)
		codes, err := kits[0].svc.GenerateRecoveryCodes(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		wrong := func(i int) string { return fmt.Sprintf("AAAA-BBBB-CCCC-%04d", i) }
		send := func(k *kit, code string) int {
			return k.call(t, "POST", "/users/mfa/resetMyQRCodeEnroll", "u:"+user, jsonType, body(mfa.Recovery, code))
		}
		return wrong, codes[0], send
	}},
	{"WebAuthn", mfa.WebAuthn, func(t *testing.T, kits []*kit, user string) (func(int) string, string, attempt) {
		svc := kits[0].svc
		if !slices.Contains(svc.Config().Factors, mfa.WebAuthn) {
			t.Skip("this backend keeps no WebAuthn credentials")
		}
		ctx := context.Background()
		opts, err := svc.BeginWebAuthnEnrollment(ctx, user, "")
		if err != nil {
			t.Fatal(err)
		}
		key := newPasskey()
		if _, err := svc.FinishWebAuthnEnrollment(ctx, user, "Key", []byte(key.register(t, opts))); err != nil {
			t.Fatal(err)
		}
		check, err := svc.BeginWebAuthnCheck(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		forged := key.clone()
		forged.cred.Key = newCredential().Key
		wrong := forged.assert(t, check)
		send := func(k *kit, credential string) int {
			return k.call(t, "PUT", "/oauth/users/mfa/verify", "u:"+user, jsonType, credentialBody(credential))
		}
		return func(int) string { return wrong }, key.assert(t, check), send
	}},
	{"Challenge", mfa.Authenticator, func(t *testing.T, kits []*kit, user string) (func(int) string, string, attempt) {
		secret, p := enrollDirect(t, kits[0].svc, user)
		ch, err := kits[0].svc.StartChallenge(context.Background(), user, "")
		if err != nil {
			t.Fatal(err)
		}
		send := func(k *kit, code string) int {
			form := url.Values{"grant_type": {"state_token"}, "state_token": {ch.Token}, "totp": {code}}
			return k.call(t, "POST", "/token", "", "application/x-www-form-urlencoded", form.Encode())
		}
		return wrongTOTP(secret, p), p.Code(secret, p.Step(time.Now())+1), send
	}},
}

// burst sends n wrong codes at once, spread over the kits, and the right
// code once the store shows the limit reached; it checks S22: at most
// MaxFailures codes were compared (failure events) and the right code was
// refused.
func burst(t *testing.T, kits []*kit, store storage.Store, n int) {
	for _, p := range burstPaths {
		t.Run(p.name, func(t *testing.T) {
			user := fmt.Sprintf("burst-%s-%d@example.com", strings.ToLower(p.name), time.Now().UnixNano())
			wrong, right, send := p.setup(t, kits, user)
			var wg sync.WaitGroup
			statuses := make([]int, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = send(kits[i%len(kits)], wrong(i))
				}()
			}
			// The right code goes in as soon as the limit is reached, while
			// the burst is still running where it is. (A burst with one
			// state token may end before five codes were compared: the
			// token serialises the checks. Then there is no limit to test.)
			done := make(chan struct{})
			rightStatus := make(chan int, 1)
			go func() {
				ctx := context.Background()
				for {
					a, err := store.Attempts(ctx, user, p.factor)
					if err == nil && a.Failures >= 5 {
						rightStatus <- send(kits[0], right)
						return
					}
					select {
					case <-done:
						rightStatus <- 0
						return
					case <-time.After(time.Millisecond):
					}
				}
			}()
			wg.Wait()
			close(done)
			compared := 0
			for _, k := range kits {
				compared += k.events.Count(user, p.factor, mfa.EventFailure)
			}
			counts := map[int]int{}
			for _, s := range statuses {
				counts[s]++
			}
			if compared > 5 || compared == 0 {
				t.Fatalf("S22: %d of %d concurrent wrong codes were compared, want at most 5 (statuses %v)", compared, n, counts)
			}
			if counts[400]+counts[429] != n {
				t.Fatalf("statuses %v, want only 400 and 429", counts)
			}
			if got := <-rightStatus; got == 0 && p.name != "Challenge" {
				t.Fatal("the limit was never reached")
			} else if got == http.StatusOK {
				t.Fatalf("S22: the right code was accepted after the limit was reached")
			}
			for _, k := range kits {
				if k.events.Count(user, p.factor, mfa.EventVerified)+k.events.Count(user, p.factor, mfa.EventRecoveryUsed) != 0 {
					t.Fatal("S22: a code was accepted inside the burst")
				}
			}
		})
	}
}

// TestConcurrentWrongCodesOneInstance: 100 concurrent wrong codes at one
// user through HTTP, on every backend (S22).
func TestConcurrentWrongCodesOneInstance(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		st := memstore.New()
		burst(t, newKits(t, st), st, 100)
	})
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			st, _ := p.pair(t)
			burst(t, newKits(t, st), st, 100)
		})
	}
}

// TestConcurrentWrongCodesTwoInstances: 50 + 50 concurrent wrong codes at
// two kit instances sharing each shared backend (S22).
func TestConcurrentWrongCodesTwoInstances(t *testing.T) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := p.pair(t)
			burst(t, newKits(t, a, b), a, 100)
		})
	}
}

package httpx_test

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// staticAuthorizer knows one token and no clients; a host wires its own
// session or OAuth system in here.
type staticAuthorizer struct{}

func (staticAuthorizer) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	if token != "t0ken" {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return httpx.User{Username: "alice", Email: "alice@example.com", Roles: []string{"ROLE_USER"}}, nil
}

func (staticAuthorizer) AuthenticateClient(context.Context, string, string) error {
	return httpx.ErrUnauthorized
}

// Mount the whole API on an existing ServeMux, beside the host's routes.
func ExampleHandlers_Mount() {
	svc, err := mfa.New(memstore.New(), &mailer.Writer{W: os.Stdout}, mfa.NewRandomKeyring(), mfa.Config{Issuer: "Acme"})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	httpx.New(svc, staticAuthorizer{}, httpx.Config{}).Mount(mux, "")
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the host app") })

	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/oauth/users/mfaDetails", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, " ", string(body))
	// Output: 200 OK {"availables":["AUTHENTICATOR","EMAIL"],"details":{}}
}

// sessionAuthorizer shows an Authorizer over the host's own sessions: a
// Bearer token names a session; MFAAt records when it passed MFA, which the
// step-up checks read.
type sessionAuthorizer struct {
	sessions map[string]httpx.User
	clients  map[string]string
}

func (a sessionAuthorizer) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	u, ok := a.sessions[token]
	if !ok {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return u, nil
}

func (a sessionAuthorizer) AuthenticateClient(_ context.Context, id, secret string) error {
	want, ok := a.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return httpx.ErrUnauthorized
	}
	return nil
}

// Implement an Authorizer and protect a host route with a step-up check.
func ExampleAuthorizer() {
	authz := sessionAuthorizer{
		sessions: map[string]httpx.User{
			"s1": {Username: "alice", Email: "alice@example.com", MFAAt: time.Now()},
			"s2": {Username: "bob", Email: "bob@example.com"}, // signed in with a password only
		},
		clients: map[string]string{"web": "secret"},
	}
	svc, _ := mfa.New(memstore.New(), &mailer.Writer{W: io.Discard}, mfa.NewRandomKeyring(), mfa.Config{})
	api := httpx.New(svc, authz, httpx.Config{})
	payments := api.Auth().RequireMFA(5 * time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "payment page")
	}))
	for _, token := range []string{"s1", "s2"} {
		req := httptest.NewRequest("GET", "/payments", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		payments.ServeHTTP(rec, req)
		fmt.Println(token, rec.Code)
	}
	// Output:
	// s1 200
	// s2 401
}

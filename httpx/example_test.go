package httpx_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

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

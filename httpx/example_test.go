package httpx_test

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// staticTokens knows one access token; a host wires its own OAuth token
// store in here.
type staticTokens struct{}

func (staticTokens) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	if token != "t0ken" {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return httpx.User{Username: "alice", Email: "alice@example.com", Roles: []string{"ROLE_USER"}}, nil
}

// Mount the whole API on an existing ServeMux, beside the host's routes.
func ExampleHandlers_Mount() {
	svc, err := mfa.New(memstore.New(), &mailer.Writer{W: os.Stdout}, mfa.NewRandomKeyring(), mfa.Config{Issuer: "Acme"})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	httpx.New(svc, httpx.Bearer(staticTokens{}), httpx.Config{}).Mount(mux, "")
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

// oauthServer stands for a host's OAuth server: access tokens name
// sessions, whose MFAAt records when they passed MFA, and apps sign in as
// clients.
type oauthServer struct {
	sessions map[string]httpx.User
	clients  map[string]string
}

func (o oauthServer) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	u, ok := o.sessions[token]
	if !ok {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return u, nil
}

func (o oauthServer) AuthenticateClient(_ context.Context, id, secret string) error {
	want, ok := o.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return httpx.ErrUnauthorized
	}
	return nil
}

// An OAuth host: Bearer access tokens, client credentials for the
// lost-phone routes, and a host route that needs a recent MFA. Bob signed
// in with a password only and has no second factor yet, so he is told to
// set one up (403 enrollment_required); without a token the answer is 401.
func ExampleBearer() {
	oauth := oauthServer{
		sessions: map[string]httpx.User{
			"s1": {Username: "alice", Email: "alice@example.com", MFAAt: time.Now()},
			"s2": {Username: "bob", Email: "bob@example.com"},
		},
		clients: map[string]string{"web": "secret"},
	}
	svc, _ := mfa.New(memstore.New(), &mailer.Writer{W: io.Discard}, mfa.NewRandomKeyring(), mfa.Config{})
	api := httpx.New(svc, httpx.Bearer(oauth), httpx.Config{Clients: oauth})
	payments := api.Auth().RequireMFA(5 * time.Minute)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "payment page")
	}))
	for _, token := range []string{"s1", "s2", ""} {
		req := httptest.NewRequest("GET", "/payments", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		payments.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%q %d %s", token, rec.Code, rec.Header().Get("WWW-Authenticate"))))
	}
	// Output:
	// "s1" 200
	// "s2" 403
	// "" 401 Bearer realm="mfakit"
}

// A cookie-session app: its own password form starts the challenge, the
// kit's SignIn completes it and the host creates its session; the kit's
// routes find the user by the session cookie. (Here RequireMFA makes the
// user, who has no factor yet, sign in to enroll.)
func ExampleHandlers_SignIn() {
	svc, _ := mfa.New(memstore.New(), &mailer.Writer{W: io.Discard}, mfa.NewRandomKeyring(), mfa.Config{RequireMFA: true})
	var mu sync.Mutex
	sessions := map[string]httpx.User{} // a host keeps these in its session manager
	fromCookie := httpx.AuthenticatorFunc(func(r *http.Request) (httpx.User, error) {
		c, err := r.Cookie("session")
		if err != nil {
			return httpx.User{}, httpx.ErrUnauthorized
		}
		mu.Lock()
		defer mu.Unlock()
		u, ok := sessions[c.Value]
		if !ok {
			return httpx.User{}, httpx.ErrUnauthorized
		}
		return u, nil
	})
	api := httpx.New(svc, fromCookie, httpx.Config{})
	startSession := func(w http.ResponseWriter, u httpx.User) {
		c := &http.Cookie{Name: "session", Value: rand.Text(), Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode}
		mu.Lock()
		sessions[c.Value] = u
		mu.Unlock()
		http.SetCookie(w, c)
	}

	mux := http.NewServeMux()
	api.Mount(mux, "")
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("username") // the host checks the password here
		ch, err := svc.StartChallenge(r.Context(), user, user)
		switch {
		case err != nil:
			httpx.DefaultErrorHandler(w, r, err)
		case ch.Status == mfa.ChallengeNone: // no factor, none required: signed in
			startSession(w, httpx.User{Username: user, Email: user})
		default: // VERIFY: the code form; ENROLL: the same, with no code to type
			fmt.Fprintf(w, `<form method="post" action="/login/code"><input type="hidden" name="state_token" value="%s">...`, ch.Token)
		}
	})
	mux.Handle("POST /login/code", api.SignIn(func(w http.ResponseWriter, r *http.Request, res mfa.LoginResult) {
		u := httpx.User{Username: res.User, Email: res.User}
		if !res.NeedsEnrollment {
			u.MFAAt = time.Now()
		}
		startSession(w, u)
		fmt.Fprintf(w, "signed in as %s (only to enroll: %t)\n", res.User, res.NeedsEnrollment)
	}))

	// A browser's part.
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	browser := srv.Client()
	browser.Jar, _ = cookiejar.New(nil)
	resp, _ := browser.PostForm(srv.URL+"/login", url.Values{"username": {"alice@example.com"}, "password": {"..."}})
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token, _, _ := strings.Cut(strings.SplitAfter(string(page), `value="`)[1], `"`)
	resp, _ = browser.PostForm(srv.URL+"/login/code", url.Values{"state_token": {token}})
	io.Copy(os.Stdout, resp.Body)
	resp.Body.Close()
	resp, _ = browser.Get(srv.URL + "/oauth/users/mfaDetails")
	io.Copy(os.Stdout, resp.Body)
	resp.Body.Close()
	// Output:
	// signed in as alice@example.com (only to enroll: true)
	// {"availables":["AUTHENTICATOR","EMAIL"],"details":{}}
}

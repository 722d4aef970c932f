package httpx

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// ErrUnauthorized is what an Authorizer returns (possibly wrapped) for
// missing, unknown, expired or wrong credentials. Any other error from an
// Authorizer is treated as an internal failure (500).
var ErrUnauthorized = errors.New("httpx: unauthorized")

// User is the identity behind a Bearer token.
type User struct {
	// Username identifies the user to mfakit; it must be stable.
	Username string
	// Email is where email codes go; may be empty if the host has none.
	Email string
	// Roles are the user's roles, e.g. "ROLE_ADMIN_CUSTOMER".
	Roles []string
	// MFAAt is when this session last passed MFA (zero if it never did):
	// the time the host minted the token after a completed challenge.
	// Step-up checks (RequireMFA, adding a second factor, regenerating
	// recovery codes) compare it with their max age.
	MFAAt time.Time
	// Locale picks translated emails (e.g. "de-CH"); empty means the
	// request's Accept-Language, then the default templates.
	Locale string
}

// Principal returns u as an mfa.Principal.
func (u User) Principal() mfa.Principal { return mfa.Principal{Username: u.Username, Roles: u.Roles} }

// Authorizer connects mfakit to the host's identity system.
type Authorizer interface {
	// AuthenticateToken resolves a Bearer token to its user. An unknown,
	// expired or revoked token returns an error wrapping ErrUnauthorized.
	AuthenticateToken(ctx context.Context, token string) (User, error)
	// AuthenticateClient checks OAuth client credentials (HTTP Basic).
	// Wrong credentials return an error wrapping ErrUnauthorized. It should
	// compare secrets in constant time.
	AuthenticateClient(ctx context.Context, clientID, secret string) error
}

type userKey struct{}

// UserFrom returns the user that RequireUser authenticated, if any.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

// WithUser returns ctx carrying u, as RequireUser does.
func WithUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// Auth checks credentials with an Authorizer. It offers each check as a
// middleware and, beside it, as a function for hosts on other frameworks.
type Auth struct {
	authz   Authorizer
	onError ErrorHandler
	trusted []netip.Prefix
	now     func() time.Time
}

// CheckUser authenticates the Bearer token of r and returns its user. It
// reads only headers, never the body (S18).
func (a *Auth) CheckUser(r *http.Request) (User, error) {
	token, ok := bearerToken(r)
	if !ok {
		return User{}, ErrUnauthorized
	}
	u, err := a.authz.AuthenticateToken(r.Context(), token)
	if err != nil {
		return User{}, err
	}
	if u.Username == "" {
		return User{}, ErrUnauthorized
	}
	return u, nil
}

// CheckClient authenticates the HTTP Basic client credentials of r.
func (a *Auth) CheckClient(r *http.Request) (clientID string, err error) {
	id, secret, ok := r.BasicAuth()
	if !ok || id == "" {
		return "", ErrUnauthorized
	}
	if err := a.authz.AuthenticateClient(r.Context(), id, secret); err != nil {
		return "", err
	}
	return id, nil
}

// RequireUser is middleware that admits requests with a valid Bearer token
// and puts the user in the context (see UserFrom); others get 401.
func (a *Auth) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.CheckUser(r)
		if err != nil {
			a.refuse(w, r, err, schemeBearer)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

// RequireRole is middleware for routes behind RequireUser that admits only
// users holding role; others get 403.
func (a *Auth) RequireRole(role string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok := UserFrom(r.Context())
			if !ok {
				a.onError(w, r, ErrUnauthorized)
				return
			}
			if !u.Principal().HasRole(role) {
				a.onError(w, r, mfa.ErrForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// The authentication schemes a route accepts, for refuse.
const (
	schemeBearer = "Bearer"
	schemeBasic  = "Basic"
)

// refuse answers a request whose credentials did not pass, with err, and
// is the one place that writes WWW-Authenticate: for missing or wrong
// credentials (ErrUnauthorized) a challenge for each of the route's
// schemes, for a missing step-up (ErrMFARequired) the RFC 9470 Bearer
// challenge with the max age, and for any other error (a failing
// Authorizer, say) none.
func (a *Auth) refuse(w http.ResponseWriter, r *http.Request, err error, schemes ...string) {
	if v := wwwAuthenticate(err, schemes); v != "" {
		w.Header().Set("WWW-Authenticate", v)
	}
	a.onError(w, r, err)
}

// wwwAuthenticate is the WWW-Authenticate value refuse sets, or "".
func wwwAuthenticate(err error, schemes []string) string {
	if stepUp, ok := errors.AsType[*mfaRequiredError](err); ok {
		return `Bearer realm="mfakit", error="insufficient_user_authentication", ` +
			`error_description="a recent multi-factor authentication is required", max_age=` +
			strconv.Itoa(int(stepUp.maxAge/time.Second))
	}
	if !errors.Is(err, ErrUnauthorized) {
		return ""
	}
	challenges := make([]string, len(schemes))
	for i, s := range schemes {
		challenges[i] = s + ` realm="mfakit"`
	}
	return strings.Join(challenges, ", ")
}

// ClientIP returns the client address of r: the connection's peer, or,
// when the peer is a configured trusted proxy, the nearest address in
// X-Forwarded-For that is not a trusted proxy. It never trusts headers
// from an untrusted peer.
func (a *Auth) ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !a.isTrusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !a.isTrusted(addr) {
			return addr.Unmap().String()
		}
	}
	return host
}

func (a *Auth) isTrusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

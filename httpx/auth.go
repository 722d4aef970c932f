package httpx

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mfakit/mfakit/internal/ctxvalue"
	"github.com/mfakit/mfakit/mfa"
)

// ErrUnauthorized is what an Authenticator, a TokenAuthenticator or a
// ClientAuthenticator returns (possibly wrapped) for missing, unknown,
// expired or wrong credentials. Any other error from them is treated as an
// internal failure (500).
var ErrUnauthorized = errors.New("httpx: unauthorized")

// User is the identity behind a request, as the Authenticator (or host
// middleware, with WithUser) reports it.
type User struct {
	// Username identifies the user to mfakit; it must be stable.
	Username string
	// Email is where email codes go; may be empty if the host has none.
	Email string
	// Roles are the user's roles, e.g. "ROLE_ADMIN_CUSTOMER".
	Roles []string
	// MFAAt is when this session last passed MFA (zero if it never did):
	// the time the host created or upgraded the session after a completed
	// challenge, or after a re-verification (Config.OnVerified). Step-up
	// checks (RequireMFA, adding a second factor, regenerating recovery
	// codes) compare it with their max age.
	MFAAt time.Time
	// Locale picks translated emails (e.g. "de-CH"); empty means the
	// request's Accept-Language, then the default templates.
	Locale string
}

// Principal returns u as an mfa.Principal.
func (u User) Principal() mfa.Principal { return mfa.Principal{Username: u.Username, Roles: u.Roles} }

type userKey struct{}

// UserFrom returns the user of ctx: the one host middleware set with
// WithUser, or the one a check of this package authenticated.
func UserFrom(ctx context.Context) (User, bool) {
	return ctxvalue.Get[userKey, User](ctx)
}

// WithUser returns ctx carrying u. Host middleware that has already
// authenticated a request (loaded its session, say) sets the user this
// way, and every kit route and check then takes it instead of asking the
// Authenticator; RequireUser sets it too.
func WithUser(ctx context.Context, u User) context.Context {
	return ctxvalue.With[userKey](ctx, u)
}

// Auth checks credentials: the user with the Authenticator, OAuth clients
// with Config.Clients. It offers each check as a middleware and, beside
// it, as a function for hosts on other frameworks.
type Auth struct {
	authn   Authenticator
	clients ClientAuthenticator
	// userSchemes are the WWW-Authenticate schemes of the Authenticator:
	// Bearer for the one Bearer returns, none for any other.
	userSchemes []string
	onError     ErrorHandler
	trusted     []netip.Prefix
	now         func() time.Time
	// svc answers whether a user holds a factor, for step-up; nil only
	// for Handlers made without a Service, which serve nothing.
	svc           *mfa.Service
	withoutFactor StepUpPolicy
}

// CheckUser returns the user of r: the one in r's context (WithUser, set
// by host middleware or an earlier check), else the one the Authenticator
// finds. A user with an empty Username counts as none (ErrUnauthorized).
func (a *Auth) CheckUser(r *http.Request) (User, error) {
	if u, ok := UserFrom(r.Context()); ok && u.Username != "" {
		return u, nil
	}
	u, err := a.authn.AuthenticateRequest(r)
	if err != nil {
		return User{}, err
	}
	if u.Username == "" {
		return User{}, ErrUnauthorized
	}
	return u, nil
}

// CheckClient authenticates the HTTP Basic client credentials of r with
// Config.Clients. Without Config.Clients no client is known, and every
// request is refused with ErrUnauthorized.
func (a *Auth) CheckClient(r *http.Request) (clientID string, err error) {
	id, secret, ok := r.BasicAuth()
	if _, one := authorization(r.Header); !one || !ok || id == "" || a.clients == nil {
		return "", ErrUnauthorized
	}
	if err := a.clients.AuthenticateClient(r.Context(), id, secret); err != nil {
		return "", err
	}
	return id, nil
}

// RequireUser is middleware that admits requests with a user (see
// CheckUser) and puts the user in the context (see UserFrom); others get
// 401.
func (a *Auth) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.CheckUser(r)
		if err != nil {
			a.refuse(w, r, err, a.userSchemes...)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
	})
}

// RequireRole is middleware that admits only users (see CheckUser)
// holding role: others get 401 without a user, 403 without the role. It
// puts the user in the context.
func (a *Auth) RequireRole(role string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, err := a.CheckUser(r)
			if err != nil {
				a.refuse(w, r, err, a.userSchemes...)
				return
			}
			if !u.Principal().HasRole(role) {
				a.onError(w, r, mfa.ErrForbidden)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
		})
	}
}

// offersUserCredentials reports whether r carries an Authorization header
// of another scheme than Basic (or several Authorization headers):
// credentials for the Authenticator, which a route that also takes a state
// token must refuse rather than ignore when they are wrong.
func offersUserCredentials(r *http.Request) bool {
	if len(r.Header["Authorization"]) > 1 {
		return true // ambiguous: wrong credentials (see authorization)
	}
	v, _ := authorization(r.Header)
	scheme, _, _ := strings.Cut(v, " ")
	return scheme != "" && !strings.EqualFold(scheme, schemeBasic)
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
// challenge with the max age when the route takes Bearer, and for any
// other error (a failing Authenticator, say) none.
func (a *Auth) refuse(w http.ResponseWriter, r *http.Request, err error, schemes ...string) {
	if v := wwwAuthenticate(err, schemes); v != "" {
		w.Header().Set("WWW-Authenticate", v)
	}
	a.onError(w, r, err)
}

// wwwAuthenticate is the WWW-Authenticate value refuse sets, or "".
func wwwAuthenticate(err error, schemes []string) string {
	if stepUp, ok := errors.AsType[*mfaRequiredError](err); ok {
		if !slices.Contains(schemes, schemeBearer) {
			return ""
		}
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
	if len(a.trusted) == 0 {
		return host // no proxy is trusted: the peer is the client
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

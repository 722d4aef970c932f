package httpx

import (
	"context"
	"net/http"
	"strings"
)

// Authenticator finds the user behind a request: a session cookie, a
// Bearer token, a header set by a trusted proxy. It is how the kit learns
// who calls; New takes one.
//
// AuthenticateRequest returns the user of r, whose Username must not be
// empty. A request with no credentials, or with unknown, expired or
// revoked ones, gets an error wrapping ErrUnauthorized (answered 401);
// any other error is an internal failure (answered 500 and logged, its
// text never shown). It reads only what arrives before the body (headers,
// cookies, r.TLS, r.RemoteAddr): the kit authenticates a request before
// it reads the body (S18). It is called once per request at most, and not
// at all when host middleware has already put a user in the request's
// context with WithUser.
type Authenticator interface {
	AuthenticateRequest(r *http.Request) (User, error)
}

// AuthenticatorFunc is a function that is an Authenticator.
type AuthenticatorFunc func(r *http.Request) (User, error)

// AuthenticateRequest returns f(r).
func (f AuthenticatorFunc) AuthenticateRequest(r *http.Request) (User, error) { return f(r) }

// TokenAuthenticator is the Bearer (OAuth) dialect of an Authenticator:
// it resolves an access token to its user. An unknown, expired or revoked
// token returns an error wrapping ErrUnauthorized; any other error is an
// internal failure. Bearer makes an Authenticator of it.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (User, error)
}

// Bearer returns an Authenticator that reads "Authorization: Bearer
// <token>" and asks t for its user; a request without such a header is
// refused (ErrUnauthorized) without calling t. With it, the kit's
// refusals carry a Bearer challenge (WWW-Authenticate: Bearer, and RFC
// 9470's insufficient_user_authentication for a missing step-up); with
// any other Authenticator they carry none.
func Bearer(t TokenAuthenticator) Authenticator { return bearer{t} }

// bearer is the Authenticator Bearer returns; New recognises it by type
// to add the Bearer challenges.
type bearer struct{ tokens TokenAuthenticator }

// AuthenticateRequest implements Authenticator.
func (b bearer) AuthenticateRequest(r *http.Request) (User, error) {
	token, ok := bearerToken(r)
	if !ok {
		return User{}, ErrUnauthorized
	}
	return b.tokens.AuthenticateToken(r.Context(), token)
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	v, one := authorization(r.Header)
	scheme, token, ok := strings.Cut(v, " ")
	if !one || !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// ClientAuthenticator checks OAuth client credentials (HTTP Basic), for
// hosts whose apps sign in as OAuth clients (Config.Clients).
//
// AuthenticateClient returns nil for a known client whose secret is
// right, and an error wrapping ErrUnauthorized for an unknown client or a
// wrong secret; any other error is an internal failure. It should compare
// secrets in constant time.
type ClientAuthenticator interface {
	AuthenticateClient(ctx context.Context, clientID, secret string) error
}

package httpx

import (
	"net/http"
	"strings"
)

// Route is one entry of the default route table.
type Route struct {
	// Method is the HTTP method the route answers (several joined by ", ").
	Method string
	// Paths are the seed path and, where the seed omits /oauth, its alias.
	Paths []string
	// Handler serves the route (method check and authentication included).
	Handler http.Handler
}

// Routes returns the default route table of the API contract: the seven
// endpoints, each at its seed path and, for the four the seed writes
// without /oauth, also at the /oauth-prefixed alias; the passkey routes
// (associateWebAuthn and verifyWebAuthnEnroll with their aliases, the
// list, the removal and the step-up options), which answer 400
// factor_disabled unless WEBAUTHN is enabled; then the kit's extensions
// (recovery codes, switching a sign-in challenge, re-verification).
func (h *Handlers) Routes() []Route {
	both := func(p string) []string { return []string{p, "/oauth" + p} }
	return []Route{
		{http.MethodGet, []string{"/oauth/users/mfaDetails"}, h.MFADetails()},
		{http.MethodPut, both("/users/mfa/associateQRCode"), h.AssociateQRCode()},
		{http.MethodPut, both("/users/mfa/verifyQRCodeEnroll"), h.VerifyQRCodeEnroll()},
		{http.MethodPost, both("/users/mfa/resetMyQRCodeEnroll"), h.ResetMyQRCodeEnroll()},
		{http.MethodPut, both("/users/{username}/mfa/resetQRCodeEnroll"), h.ResetQRCodeEnroll()},
		{http.MethodPut, []string{"/oauth/users/mfa/enrollEmail"}, h.EnrollEmail()},
		{http.MethodPut, []string{"/oauth/users/mfa/verifyEmail"}, h.VerifyEmail()},
		// Passkeys (WEBAUTHN), in the seed's style.
		{http.MethodPut, both("/users/mfa/associateWebAuthn"), h.AssociateWebAuthn()},
		{http.MethodPut, both("/users/mfa/verifyWebAuthnEnroll"), h.VerifyWebAuthnEnroll()},
		{http.MethodGet, []string{"/oauth/users/mfa/webauthn"}, h.WebAuthnCredentials()},
		{http.MethodDelete, []string{"/oauth/users/mfa/webauthn/{id}"}, h.RemoveWebAuthnCredential()},
		{http.MethodPut, []string{"/oauth/users/mfa/webauthn/challenge"}, h.WebAuthnChallenge()},
		// Kit extensions beyond the seed.
		{"GET, POST", []string{"/oauth/users/mfa/recoveryCodes"}, h.RecoveryCodes()},
		{http.MethodPut, []string{"/oauth/users/mfa/challenge"}, h.SwitchChallenge()},
		{http.MethodPut, []string{"/oauth/users/mfa/verify"}, h.CheckCode()},
	}
}

// Mount registers every route on mux under prefix ("" or "/" for the root,
// else a path such as "/mfa"), each wrapped in middleware, outermost first
// (as chi's Use): session loading, say, so that the Authenticator or a
// WithUser set by the middleware finds the session. Each pattern is
// registered without a method, so a wrong method reaches the handler and
// gets a problem+json 405 with Allow.
func (h *Handlers) Mount(mux *http.ServeMux, prefix string, middleware ...func(http.Handler) http.Handler) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	for _, rt := range h.Routes() {
		handler := wrap(rt.Handler, middleware)
		for _, p := range rt.Paths {
			mux.Handle(prefix+p, handler)
		}
	}
}

// Handler returns an http.Handler serving every route at the root, each
// wrapped in middleware as Mount wraps it, and a problem+json 404 for any
// other path. Hosts mount it under a prefix with http.StripPrefix, or use
// Mount to share their own mux.
func (h *Handlers) Handler(middleware ...func(http.Handler) http.Handler) http.Handler {
	mux := http.NewServeMux()
	h.Mount(mux, "", middleware...)
	mux.Handle("/", NotFound(h.cfg.ErrorHandler))
	return mux
}

// wrap returns next inside middleware, the first outermost.
func wrap(next http.Handler, middleware []func(http.Handler) http.Handler) http.Handler {
	for i := len(middleware) - 1; i >= 0; i-- {
		next = middleware[i](next)
	}
	return next
}

// NotFound returns a handler that answers every request with a
// problem+json 404 through onError.
func NotFound(onError ErrorHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		onError(w, r, NewProblem(http.StatusNotFound, CodeNotFound, "no such endpoint"))
	})
}

package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// Config tunes the HTTP layer. Its zero value is safe.
type Config struct {
	// MaxBodyBytes caps request bodies (S19). Default 4096.
	MaxBodyBytes int64
	// MaxWebAuthnBodyBytes caps the bodies that may carry a WebAuthn
	// credential, larger than a code: verifyWebAuthnEnroll and, when
	// WEBAUTHN is enabled, the sign-in (state token grant, SignIn), the
	// re-verification (verify) and the self reset (resetMyQRCodeEnroll).
	// Default 16 KiB; never below MaxBodyBytes.
	MaxWebAuthnBodyBytes int64
	// QRSize is the QR code's width and height in pixels. Default 256.
	QRSize int
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when
	// finding the client IP for audit events (rule 8). Default none: the
	// connection's peer address is used.
	TrustedProxies []netip.Prefix
	// ErrorHandler writes error answers, including those of SignIn.
	// Default DefaultErrorHandler.
	ErrorHandler ErrorHandler
	// Logger receives the server errors that do not come from the
	// mfa.Service, such as a failing Authenticator; the Service logs its
	// own through mfa.Config.Logger. Default slog.Default().
	Logger *slog.Logger
	// StepUpMaxAge is how recent a session's MFA must be to add a second
	// factor or regenerate recovery codes (S17). Default 10 minutes.
	StepUpMaxAge time.Duration
	// StepUpWithoutFactor is what a step-up check (RequireMFA, CheckMFA,
	// regenerating recovery codes) does with a user who holds no verified
	// factor and so cannot step up. Default StepUpEnroll: 403
	// enrollment_required. Enrolling the first factor never needs a
	// step-up, whatever this says.
	StepUpWithoutFactor StepUpPolicy
	// Clients checks the OAuth client credentials (HTTP Basic) of the
	// routes that take them beside a sign-in's state token: the lost-phone
	// reset (resetMyQRCodeEnroll with a stateToken) and the challenge
	// switch (PUT /oauth/users/mfa/challenge). Default nil: those routes
	// take the request on the state token alone, which proves the password
	// step (client credentials are public and prove nothing, S23). When
	// set, valid Basic credentials are required there too.
	Clients ClientAuthenticator
	// CrossOrigin refuses cross-origin browser requests (CSRF) to the
	// state-changing routes (every method but GET and HEAD) when they carry
	// no Authorization header, that is when a browser may have sent
	// ambient credentials such as a cookie; the answer is 403 cross_origin.
	// A request with an Authorization header (Bearer, Basic) is not
	// checked: a page of another site cannot put the user's token in one.
	// Set it to trust other origins (AddTrustedOrigin). Default:
	// http.NewCrossOriginProtection(), which trusts only the request's own
	// origin.
	CrossOrigin *http.CrossOriginProtection
	// OnVerified, when set, is called after a successful code check of a
	// user: PUT /oauth/users/mfa/verify (CheckCode), verifyQRCodeEnroll and
	// verifyEmail, with the user and the factor, before the answer is
	// written; a host refreshes the session's MFA time there (renews the
	// session token and records User.MFAAt = now), so step-up checks pass.
	// It may set headers (a cookie) and must not write the body. Default
	// nil.
	OnVerified func(w http.ResponseWriter, r *http.Request, u User, f mfa.Factor)
}

// Handlers serves the MFA setup API of one mfa.Service. Each method returns
// the http.Handler of one endpoint, complete with its method check and
// authentication, to mount at any path; Mount and Handler mount them all.
type Handlers struct {
	svc  *mfa.Service
	auth *Auth
	cfg  Config
	// now is the Service's clock (mfa.Config.Now): step-up checks, the
	// lifetimes in answers and Retry-After all read it, and nothing else.
	now func() time.Time
	// addressOf finds where the code of a switched sign-in goes: the
	// Service's Directory (mfa.Config.Directory), or nil without one.
	addressOf mfa.AddressFunc
	// proofLimit caps the bodies that carry a factor's proof: a WebAuthn
	// assertion is larger than a code.
	proofLimit int64
	// factors are the Service's enabled factors (mfa.Config.Factors), the
	// availables of mfaDetails.
	factors []mfa.Factor
}

// New returns the Handlers of svc, finding the user behind each request
// with authn (Bearer(t) for OAuth access tokens, or the host's own, such
// as one that reads a session cookie). authn must not be nil.
// The handlers tell time by svc's clock (mfa.Config.Now), the one clock of
// the kit, and look email addresses up in its Directory
// (mfa.Config.Directory).
func New(svc *mfa.Service, authn Authenticator, cfg Config) *Handlers {
	if authn == nil {
		panic("httpx: New needs an Authenticator")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4096
	}
	if cfg.MaxWebAuthnBodyBytes <= 0 {
		cfg.MaxWebAuthnBodyBytes = 16 << 10
	}
	cfg.MaxWebAuthnBodyBytes = max(cfg.MaxWebAuthnBodyBytes, cfg.MaxBodyBytes)
	if cfg.QRSize <= 0 {
		cfg.QRSize = mfa.QRSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StepUpMaxAge <= 0 {
		cfg.StepUpMaxAge = 10 * time.Minute
	}
	if cfg.CrossOrigin == nil {
		cfg.CrossOrigin = http.NewCrossOriginProtection()
	}
	h := &Handlers{svc: svc, cfg: cfg, now: time.Now, proofLimit: cfg.MaxBodyBytes} // time.Now only without a Service, where nothing is served
	if svc != nil {
		svcCfg := svc.Config()
		h.now = svcCfg.Now
		h.factors = svcCfg.Factors
		if slices.Contains(svcCfg.Factors, mfa.WebAuthn) {
			h.proofLimit = cfg.MaxWebAuthnBodyBytes
		}
		if svcCfg.Directory != nil {
			h.addressOf = svcCfg.Directory.EmailOf
		}
	}
	custom := cfg.ErrorHandler // nil: DefaultErrorHandler's answer
	h.cfg.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		a := answerFor(err)
		if a.status() >= 500 && !loggedByService(err) {
			cfg.Logger.ErrorContext(r.Context(), "mfakit: request failed", "path", r.URL.Path, "err", err)
		}
		if custom != nil {
			custom(w, r, err)
			return
		}
		a.write(w, err)
	}
	h.auth = &Auth{authn: authn, clients: cfg.Clients, onError: h.cfg.ErrorHandler,
		trusted: cfg.TrustedProxies, now: h.now, svc: svc, withoutFactor: cfg.StepUpWithoutFactor}
	if _, ok := authn.(bearer); ok {
		h.auth.userSchemes = []string{schemeBearer}
	}
	return h
}

// loggedByService reports whether the mfa.Service has logged err already:
// it logs each Store, Mailer or key failure (mfa.ErrInternal) and each
// undelivered email (mfa.ErrMailUnavailable) once, with the operation.
// The handlers log the other server errors (an Authenticator or a Directory
// that failed, say), so every failure makes one log line.
func loggedByService(err error) bool {
	return errors.Is(err, mfa.ErrInternal) || errors.Is(err, mfa.ErrMailUnavailable)
}

// Auth returns the authentication checks the handlers use, for hosts that
// want them on their own routes.
func (h *Handlers) Auth() *Auth { return h.auth }

func (h *Handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.cfg.ErrorHandler(w, r, err)
}

// endpoint wraps fn with the method check and, for a state-changing
// method, the cross-origin check (checkOrigin). allow is one method or
// several joined by ", ". Authentication is added by the caller, before
// anything reads the body (S18), and with it the request info (withInfo).
func (h *Handlers) endpoint(allow string, fn http.HandlerFunc) http.Handler {
	methods := strings.Split(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			h.fail(w, r, NewProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				r.Method+" is not allowed here; use "+allow))
			return
		}
		if err := h.checkOrigin(r); err != nil {
			h.fail(w, r, err)
			return
		}
		fn(w, r)
	})
}

// withInfo returns r carrying, for the domain's audit events and notices,
// what is known of the caller (u may be the zero User) and, when u is
// set, u itself for UserFrom.
func (h *Handlers) withInfo(r *http.Request, u User) *http.Request {
	ctx := mfa.WithRequestInfo(r.Context(), h.requestInfo(r, u))
	if u.Username != "" {
		ctx = WithUser(ctx, u)
	}
	return r.WithContext(ctx)
}

// requestInfo is what the domain learns about the caller u of r.
func (h *Handlers) requestInfo(r *http.Request, u User) mfa.RequestInfo {
	locale := u.Locale
	if locale == "" {
		locale = acceptLanguage(headerValue(r.Header, "Accept-Language"))
	}
	return mfa.RequestInfo{ClientIP: h.auth.ClientIP(r), Email: u.Email, Locale: locale}
}

// headerValue returns the first value of header key, which must be in
// canonical form (as every key the server puts in r.Header is): it is
// r.Header.Get(key) without canonicalizing key again, a cost that showed
// on the hot routes, which read a few headers each.
// authorization returns r's Authorization header and whether r has
// exactly one. The header is a singleton (RFC 9110, section 11.6.2): a
// request with several is ambiguous — a proxy may read the last where the
// kit would read the first — so the kit treats it as carrying wrong
// credentials (401), and never as a reason to skip a check.
func authorization(h http.Header) (v string, one bool) {
	vs := h["Authorization"]
	if len(vs) != 1 {
		return "", false
	}
	return vs[0], true
}

func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// acceptLanguage returns the first language tag of an Accept-Language
// header (ignoring "*"), or "".
func acceptLanguage(header string) string {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ",")
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if tag != "" && tag != "*" && len(tag) <= 35 {
			return tag
		}
	}
	return ""
}

func (h *Handlers) userEndpoint(method string, fn func(w http.ResponseWriter, r *http.Request, u User)) http.Handler {
	return h.endpoint(method, func(w http.ResponseWriter, r *http.Request) {
		u, err := h.auth.CheckUser(r)
		if err != nil {
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
			return
		}
		fn(w, h.withInfo(r, u), u)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	setAnswerHeaders(w.Header(), "application/json", false)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// setAnswerHeaders sets the headers of every answer the kit writes:
// Content-Type to contentType, Cache-Control to no-store and, with
// nosniff, X-Content-Type-Options to nosniff. It does what Header.Set
// does for each, but puts the values in one allocation rather than one
// each; each header gets its own capped slice of it, so appending a value
// to one header (Header.Add) copies rather than overwrites another.
func setAnswerHeaders(h http.Header, contentType string, nosniff bool) {
	if !nosniff {
		v := &[2]string{contentType, "no-store"}
		h["Content-Type"], h["Cache-Control"] = v[0:1:1], v[1:2:2]
		return
	}
	v := &[3]string{contentType, "no-store", "nosniff"}
	h["Content-Type"], h["Cache-Control"], h["X-Content-Type-Options"] = v[0:1:1], v[1:2:2], v[2:3:3]
}

// writeFactor answers 200 with the FactorResponse of f and verified, as
// writeJSON would: the answers of the known factors are encoded once
// (factorAnswers), as they are constant, and written without encoding.
func writeFactor(w http.ResponseWriter, f mfa.Factor, verified bool) {
	body, ok := factorAnswers[factorAnswer{f, verified}]
	if !ok {
		writeJSON(w, http.StatusOK, FactorResponse{MFAType: f, Verified: verified})
		return
	}
	setAnswerHeaders(w.Header(), "application/json", false)
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, body)
}

type factorAnswer struct {
	f        mfa.Factor
	verified bool
}

// factorAnswers holds the encoded FactorResponse of every factor,
// verified and not, encoded as writeJSON encodes them. It is built once
// and only read.
var factorAnswers = func() map[factorAnswer]string {
	m := map[factorAnswer]string{}
	for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email, mfa.WebAuthn, mfa.Recovery} {
		for _, verified := range []bool{false, true} {
			var b strings.Builder
			if err := json.NewEncoder(&b).Encode(FactorResponse{MFAType: f, Verified: verified}); err != nil {
				panic(err)
			}
			m[factorAnswer{f, verified}] = b.String()
		}
	}
	return m
}()

// requireQuery checks that the mfatype query parameter is present and is want.
func requireQuery(r *http.Request, want mfa.Factor) error {
	got := r.URL.Query()["mfatype"]
	switch {
	case len(got) == 0 || got[0] == "":
		return invalidParam("mfatype", "query parameter is required and must be "+string(want))
	case len(got) > 1 || got[0] != string(want):
		return invalidParam("mfatype", "must be "+string(want))
	}
	return nil
}

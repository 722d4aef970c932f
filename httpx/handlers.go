package httpx

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// Config tunes the HTTP layer. Its zero value is safe.
type Config struct {
	// MaxBodyBytes caps request bodies (S19). Default 4096.
	MaxBodyBytes int64
	// QRSize is the QR code's width and height in pixels. Default 256.
	QRSize int
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when
	// finding the client IP for audit events (rule 8). Default none: the
	// connection's peer address is used.
	TrustedProxies []netip.Prefix
	// ErrorHandler writes error answers. Default DefaultErrorHandler.
	ErrorHandler ErrorHandler
	// Logger receives internal errors. Default slog.Default().
	Logger *slog.Logger
	// StepUpMaxAge is how recent a session's MFA must be to add a second
	// factor or regenerate recovery codes (S17). Default 10 minutes.
	StepUpMaxAge time.Duration
	// Now is the clock for step-up checks. Default time.Now.
	Now func() time.Time
}

// Handlers serves the MFA setup API of one mfa.Service. Each method returns
// the http.Handler of one endpoint, complete with its method check and
// authentication, to mount at any path; Mount and Handler mount them all.
type Handlers struct {
	svc  *mfa.Service
	auth *Auth
	cfg  Config
}

// New returns the Handlers of svc, authenticating callers with authz.
func New(svc *mfa.Service, authz Authorizer, cfg Config) *Handlers {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4096
	}
	if cfg.QRSize <= 0 {
		cfg.QRSize = mfa.QRSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StepUpMaxAge <= 0 {
		cfg.StepUpMaxAge = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handlers{svc: svc, cfg: cfg}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = DefaultErrorHandler
	}
	h.cfg.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if p := ProblemFor(err); p.Status >= 500 {
			cfg.Logger.ErrorContext(r.Context(), "mfakit: request failed", "path", r.URL.Path, "err", err)
		}
		cfg.ErrorHandler(w, r, err)
	}
	h.auth = &Auth{authz: authz, onError: h.cfg.ErrorHandler, trusted: cfg.TrustedProxies, now: cfg.Now}
	return h
}

// Auth returns the authentication checks the handlers use, for hosts that
// want them on their own routes.
func (h *Handlers) Auth() *Auth { return h.auth }

func (h *Handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.cfg.ErrorHandler(w, r, err)
}

// endpoint wraps fn with the method check. allow is one method or several
// joined by ", ". Authentication is added by the caller, before anything
// reads the body (S18), and with it the request info (withInfo).
func (h *Handlers) endpoint(allow string, fn http.HandlerFunc) http.Handler {
	methods := strings.Split(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			h.fail(w, r, NewProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				r.Method+" is not allowed here; use "+allow))
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
		locale = acceptLanguage(r.Header.Get("Accept-Language"))
	}
	return mfa.RequestInfo{ClientIP: h.auth.ClientIP(r), Email: u.Email, Locale: locale}
}

// acceptLanguage returns the first language tag of an Accept-Language
// header (ignoring "*"), or "".
func acceptLanguage(header string) string {
	for _, part := range strings.Split(header, ",") {
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
			h.auth.unauthorized(w, r, err)
			return
		}
		fn(w, h.withInfo(r, u), u)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

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

// stepUpForSecondFactor asks for a recent MFA before a user who already
// holds a verified factor adds another one (S17's step-up rule): a stolen
// password-only session must not be able to add the thief's factor.
func (h *Handlers) stepUpForSecondFactor(r *http.Request, u User, adding mfa.Factor) error {
	if recentMFA(u, h.cfg.StepUpMaxAge, h.cfg.Now()) {
		return nil
	}
	st, err := h.svc.Status(r.Context(), u.Username)
	if err != nil {
		return err
	}
	for f, d := range st.Details {
		if f != adding && d.Verified {
			return &mfaRequiredError{maxAge: h.cfg.StepUpMaxAge}
		}
	}
	return nil
}

// DetailsResponse is the body of GET mfaDetails.
type DetailsResponse struct {
	Availables []mfa.Factor                    `json:"availables"`
	Details    map[mfa.Factor]mfa.FactorStatus `json:"details"`
}

// MFADetails serves GET mfaDetails: the caller's enrollment status.
func (h *Handlers) MFADetails() http.Handler {
	return h.userEndpoint(http.MethodGet, func(w http.ResponseWriter, r *http.Request, u User) {
		st, err := h.svc.Status(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(appendDetails(make([]byte, 0, 128), st))
	})
}

// appendDetails writes the mfaDetails body by hand: it is the hottest
// answer, and its shape (factor names are fixed identifiers) needs no
// reflection or escaping. TestDetailsJSON checks it against encoding/json.
func appendDetails(b []byte, st mfa.Status) []byte {
	b = append(b, `{"availables":[`...)
	for i, f := range st.Available {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f...)
		b = append(b, '"')
	}
	b = append(b, `],"details":{`...)
	first := true
	for _, f := range []mfa.Factor{mfa.Authenticator, mfa.Email} { // encoding/json's sorted key order
		d, ok := st.Details[f]
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f...)
		b = append(b, `":{"verified":`...)
		b = strconv.AppendBool(b, d.Verified)
		b = append(b, '}')
	}
	return append(b, "}}\n"...)
}

// QRCodeResponse is the JSON body of associateQRCode.
type QRCodeResponse struct {
	Secret     string `json:"secret"`
	OtpauthURL string `json:"otpauthUrl"`
	QRCode     string `json:"qrCode"`
	ExpiresIn  int    `json:"expires_in"`
}

type associateRequest struct {
	Mfatype string `json:"mfatype" validate:"omitempty,eq=AUTHENTICATOR"`
}

// AssociateQRCode serves PUT associateQRCode?mfatype=AUTHENTICATOR: it
// starts a pending authenticator enrollment and answers the QR code as
// image/png, or as JSON (secret, otpauthUrl, data-URI qrCode) when the
// client accepts application/json. The answer is never cached (S20).
func (h *Handlers) AssociateQRCode() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		if err := requireQuery(r, mfa.Authenticator); err != nil {
			h.fail(w, r, err)
			return
		}
		var req associateRequest
		if err := decodeJSON(r, h.cfg.MaxBodyBytes, &req, true); err != nil {
			h.fail(w, r, err)
			return
		}
		wantJSON, err := prefersJSON(r.Header.Get("Accept"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if err := h.stepUpForSecondFactor(r, u, mfa.Authenticator); err != nil {
			h.auth.stepUp(w, r, err)
			return
		}
		key, err := h.svc.BeginAuthenticator(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		png, err := key.QRPNG(h.cfg.QRSize)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		if wantJSON {
			writeJSON(w, http.StatusOK, QRCodeResponse{Secret: key.Secret, OtpauthURL: key.URI,
				QRCode:    "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
				ExpiresIn: int(key.ExpiresAt.Sub(h.svc.Config().Now()).Round(time.Second) / time.Second)})
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(png)))
		w.WriteHeader(http.StatusOK)
		w.Write(png)
	})
}

// prefersJSON reads an Accept header: true when application/json is
// acceptable and image/png is not preferred over it; an error when neither
// can be served.
func prefersJSON(accept string) (bool, error) {
	if strings.TrimSpace(accept) == "" {
		return false, nil
	}
	var jsonQ, pngQ float64 = -1, -1
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "application/json", "application/*":
			jsonQ = max(jsonQ, q)
		case "image/png", "image/*":
			pngQ = max(pngQ, q)
		case "*/*":
			pngQ = max(pngQ, q)
		}
	}
	switch {
	case jsonQ > 0 && jsonQ >= pngQ:
		return true, nil
	case pngQ > 0:
		return false, nil
	}
	return false, NewProblem(http.StatusNotAcceptable, CodeNotAcceptable,
		"this endpoint answers image/png or application/json")
}

// CodeRequest is the body of the verify endpoints.
type CodeRequest struct {
	Mfatype string `json:"mfatype" validate:"required,oneof=AUTHENTICATOR EMAIL"`
	Totp    string `json:"totp" validate:"required,otpcode"`
}

// FactorResponse is the body of a successful verify or reset.
type FactorResponse struct {
	Mfatype  mfa.Factor `json:"mfatype"`
	Verified bool       `json:"verified"`
}

func (h *Handlers) verifyEndpoint(f mfa.Factor, verify func(ctx context.Context, user, code string) error) http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		var req CodeRequest
		if err := decodeJSON(r, h.cfg.MaxBodyBytes, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		if req.Mfatype != string(f) {
			h.fail(w, r, invalidParam("mfatype", "must be "+string(f)))
			return
		}
		if err := verify(r.Context(), u.Username, req.Totp); err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, FactorResponse{Mfatype: f, Verified: true})
	})
}

// VerifyQRCodeEnroll serves PUT verifyQRCodeEnroll with
// {"mfatype":"AUTHENTICATOR","totp":"123456"}: it verifies the pending
// authenticator enrollment.
func (h *Handlers) VerifyQRCodeEnroll() http.Handler {
	return h.verifyEndpoint(mfa.Authenticator, h.svc.VerifyAuthenticator)
}

// Verify serves PUT /oauth/users/mfa/verify (a kit extension) with
// {"mfatype":"AUTHENTICATOR","totp":"123456"}: it checks a code of the
// caller's verified authenticator — single use, counted toward lockout —
// for hosts that re-verify inside a session (say, before a payment) and
// then refresh the session's MFA time.
func (h *Handlers) Verify() http.Handler {
	return h.verifyEndpoint(mfa.Authenticator, h.svc.CheckAuthenticator)
}

// VerifyEmail serves PUT verifyEmail with {"mfatype":"EMAIL","totp":"..."}:
// it verifies the pending email enrollment with the code that was sent.
func (h *Handlers) VerifyEmail() http.Handler {
	return h.verifyEndpoint(mfa.Email, h.svc.VerifyEmail)
}

// EmailResponse is the body of a successful enrollEmail.
type EmailResponse struct {
	Mfatype   mfa.Factor `json:"mfatype"`
	Sent      bool       `json:"sent"`
	ExpiresIn int        `json:"expires_in"`
}

// EnrollEmail serves PUT enrollEmail?mfatype=EMAIL: it emails a one-time
// code to the address the Authorizer reports for the caller.
func (h *Handlers) EnrollEmail() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		if err := requireQuery(r, mfa.Email); err != nil {
			h.fail(w, r, err)
			return
		}
		if err := h.stepUpForSecondFactor(r, u, mfa.Email); err != nil {
			h.auth.stepUp(w, r, err)
			return
		}
		if err := h.svc.BeginEmail(r.Context(), u.Username, u.Email); err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, EmailResponse{Mfatype: mfa.Email, Sent: true,
			ExpiresIn: int(h.svc.Config().EmailCodeTTL / time.Second)})
	})
}

// ResetRequest is the body of resetMyQRCodeEnroll. With client
// credentials StateToken (from the password step of a sign-in) names the
// user; with a user token both StateToken and Username are absent (or
// Username matches the token's user). Username is accepted for clients
// written against older versions, and never names a user by itself (S23).
type ResetRequest struct {
	Username   string `json:"username" validate:"max=320"`
	StateToken string `json:"stateToken" validate:"max=1024"`
	Mfatype    string `json:"mfatype" validate:"required,oneof=AUTHENTICATOR EMAIL RECOVERY"`
	Totp       string `json:"totp" validate:"required,max=32"`
}

// ResetMyQRCodeEnroll serves POST resetMyQRCodeEnroll. The caller proves a
// factor the user still holds (S13):
//   - Bearer user token: {"mfatype":"AUTHENTICATOR"|"RECOVERY","totp":"..."}
//   - Basic client credentials: "stateToken" from the password step of a
//     sign-in, with "mfatype":"AUTHENTICATOR", "EMAIL" (the code the
//     challenge sent, after switching it to EMAIL) or "RECOVERY".
//
// Client credentials are public in browser and mobile apps, so they never
// stand in for the password (S23): with them, a body that names a user
// only by "username" gets the answer of a wrong code, and nothing of that
// user is read, counted or changed.
func (h *Handlers) ResetMyQRCodeEnroll() http.Handler {
	return h.endpoint(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var user string
		viaClient := false
		if _, ok := bearerToken(r); ok {
			u, err := h.auth.CheckUser(r)
			if err != nil {
				h.auth.unauthorized(w, r, err)
				return
			}
			user = u.Username
			r = h.withInfo(r, u)
		} else {
			if _, err := h.auth.CheckClient(r); err != nil {
				if errors.Is(err, ErrUnauthorized) {
					w.Header().Set("WWW-Authenticate", `Basic realm="mfakit", Bearer realm="mfakit"`)
				}
				h.fail(w, r, err)
				return
			}
			r = h.withInfo(r, User{})
			viaClient = true
		}
		var req ResetRequest
		if err := decodeJSON(r, h.cfg.MaxBodyBytes, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		proof := mfa.Proof{Factor: mfa.Factor(req.Mfatype), Code: req.Totp}
		if proof.Factor != mfa.Recovery && !isOTP(proof.Code) {
			h.fail(w, r, invalidParam("totp", "must be 6 to 8 digits"))
			return
		}
		var err error
		switch {
		case viaClient && req.StateToken == "":
			// Client credentials are public (S23): a username and a code
			// never remove a factor. The answer is a wrong code's, and
			// nothing of the named user is read or counted.
			err = mfa.ErrInvalidCode
		case viaClient && req.Username != "":
			h.fail(w, r, invalidParam("username", "must be omitted with stateToken"))
			return
		case viaClient:
			err = h.svc.ResetAuthenticatorWithChallenge(r.Context(), req.StateToken, proof)
		case req.StateToken != "":
			h.fail(w, r, invalidParam("stateToken", "is for client credentials only"))
			return
		case req.Username != "" && req.Username != user:
			h.fail(w, r, invalidParam("username", "must be omitted or match the token's user"))
			return
		case proof.Factor == mfa.Email:
			h.fail(w, r, invalidParam("mfatype", "EMAIL needs a stateToken"))
			return
		default:
			err = h.svc.ResetAuthenticator(r.Context(), user, proof)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, FactorResponse{Mfatype: mfa.Authenticator, Verified: false})
	})
}

func isOTP(s string) bool {
	if len(s) < 6 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ResetQRCodeEnroll serves PUT /users/{username}/mfa/resetQRCodeEnroll: an
// administrator (the mfa Config's AdminRole) removes the user's
// authenticator enrollment. Idempotent. The username comes from
// r.PathValue("username"); hosts on other routers set it with
// r.SetPathValue.
func (h *Handlers) ResetQRCodeEnroll() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		if !u.Principal().HasRole(h.svc.Config().AdminRole) {
			h.fail(w, r, mfa.ErrForbidden)
			return
		}
		target := r.PathValue("username")
		if err := h.svc.AdminResetAuthenticator(r.Context(), u.Principal(), target); err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, FactorResponse{Mfatype: mfa.Authenticator, Verified: false})
	})
}

package httpx

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/mfakit/mfakit/mfa"
)

// maxStateToken caps the length of a state token a request may carry.
const maxStateToken = 1024

// CompleteSignIn completes the second step of a sign-in for a cookie
// app's own sign-in route: the host checked the password, called
// mfa.Service.StartChallenge and showed the code form with the
// challenge's token; the form posts here. It reads, from a form
// (application/x-www-form-urlencoded) or a JSON object, the state token as
// "state_token" or "stateToken", the code as "totp" or "code", and
// optionally "mfatype" (RECOVERY for a recovery code; the token's own
// factor otherwise). For a WEBAUTHN challenge the proof is "credential",
// the passkey's assertion (an AuthenticationResponseJSON: a JSON object,
// or in a form its JSON text), and no code. The host signs the user in when it returns no error
// (with User.MFAAt = now unless LoginResult.NeedsEnrollment) and writes
// the error otherwise. SignIn is the whole handler; StateTokenGrant is the
// same for an OAuth token endpoint.
func (h *Handlers) CompleteSignIn(r *http.Request) (mfa.LoginResult, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var in signInFields
	var err error
	switch {
	case mt == "application/x-www-form-urlencoded":
		var form url.Values
		if form, err = h.parseForm(r); err == nil {
			in, err = signInFromForm(form)
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var req signInRequest
		if err = decodeJSON(r, h.proofLimit, &req, false); err == nil {
			in, err = req.fields()
		}
	default:
		err = NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"the request body must be a form (application/x-www-form-urlencoded) or application/json")
	}
	if err != nil {
		return mfa.LoginResult{}, err
	}
	return h.completeSignIn(r, in)
}

// StateTokenGrant completes the second step of a sign-in from an OAuth
// token request with grant_type=state_token: the form fields of
// CompleteSignIn (state_token and totp, and optionally mfatype=RECOVERY
// for a recovery code; or mfatype=WEBAUTHN and credential, the passkey's
// AuthenticationResponseJSON, for a WEBAUTHN challenge). The caller has already checked the client
// credentials; it mints its access token (with User.MFAAt = now) when this
// returns no error, and otherwise writes the error with the ErrorHandler
// (or ProblemFor).
func (h *Handlers) StateTokenGrant(r *http.Request) (mfa.LoginResult, error) {
	form, err := h.parseForm(r)
	if err != nil {
		return mfa.LoginResult{}, err
	}
	if got := form.Get("grant_type"); got != "state_token" {
		return mfa.LoginResult{}, invalidParam("grant_type", "must be state_token")
	}
	in, err := signInFromForm(form)
	if err != nil {
		return mfa.LoginResult{}, err
	}
	return h.completeSignIn(r, in)
}

// SignIn returns a handler for a cookie app's code form: POST only
// (others get 405), cross-origin checked like every state-changing route
// (Config.CrossOrigin), it completes the sign-in as CompleteSignIn does and
// calls onSuccess once with the result, where the host creates or upgrades
// its session (User.MFAAt = now, unless res.NeedsEnrollment: then the
// session may only enroll) and answers (a redirect, say). Errors, a wrong
// code among them, go to Config.ErrorHandler and never reach onSuccess.
func (h *Handlers) SignIn(onSuccess func(w http.ResponseWriter, r *http.Request, res mfa.LoginResult)) http.Handler {
	return h.endpoint(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		r = h.withInfo(r, User{})
		res, err := h.CompleteSignIn(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		onSuccess(w, r, res)
	})
}

// signInFields is the second step of a sign-in as a request states it.
type signInFields struct {
	token, mfatype, code string
	credential           []byte
}

// signInRequest is the JSON body CompleteSignIn reads: each field under
// either of its two names, the OAuth one and the one of this API's JSON.
type signInRequest struct {
	StateToken      string          `json:"state_token" validate:"max=1024"`
	StateTokenCamel string          `json:"stateToken" validate:"max=1024"`
	TOTP            string          `json:"totp" validate:"max=64"`
	Code            string          `json:"code" validate:"max=64"`
	MFAType         string          `json:"mfatype"`
	Credential      json.RawMessage `json:"credential"`
}

func (req signInRequest) fields() (signInFields, error) {
	token, err := either("state_token", req.StateToken, "stateToken", req.StateTokenCamel)
	if err != nil {
		return signInFields{}, err
	}
	code, err := either("totp", req.TOTP, "code", req.Code)
	if err != nil {
		return signInFields{}, err
	}
	return signInFields{token: token, mfatype: req.MFAType, code: code, credential: req.Credential}, nil
}

// signInFromForm reads the fields of CompleteSignIn from a form. Each may
// be given once: a repeated one is refused, as a repeated JSON key is
// (S28).
func signInFromForm(form url.Values) (signInFields, error) {
	var v [6]string
	for i, name := range []string{"state_token", "stateToken", "totp", "code", "mfatype", "credential"} {
		switch len(form[name]) {
		case 0:
		case 1:
			v[i] = form[name][0]
		default:
			return signInFields{}, invalidParam(name, "must be given once")
		}
	}
	var credential json.RawMessage
	if v[5] != "" {
		credential = json.RawMessage(v[5])
	}
	return signInRequest{StateToken: v[0], StateTokenCamel: v[1], TOTP: v[2], Code: v[3], MFAType: v[4],
		Credential: credential}.fields()
}

// either returns the one of two spellings of a field that is set; both
// set is an error.
func either(name, v, altName, alt string) (string, error) {
	if v != "" && alt != "" {
		return "", invalidParam(name, "give "+name+" or "+altName+", not both")
	}
	return v + alt, nil
}

// parseForm reads r's form body (at most Config.MaxBodyBytes, or
// MaxWebAuthnBodyBytes when WEBAUTHN is enabled) and returns
// its fields; the query string is not read, so a state token or a code
// never comes from a URL.
func (h *Handlers) parseForm(r *http.Request) (url.Values, error) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, h.proofLimit)
	}
	if err := r.ParseForm(); err != nil {
		if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, decodeProblem(tooLarge)
		}
		return nil, NewProblem(http.StatusBadRequest, CodeInvalidRequest, "the body must be a form")
	}
	return r.PostForm, nil
}

// completeSignIn checks the fields of a sign-in's second step and
// completes its challenge.
func (h *Handlers) completeSignIn(r *http.Request, in signInFields) (mfa.LoginResult, error) {
	switch {
	case in.token == "":
		return mfa.LoginResult{}, invalidParam("state_token", "is required")
	case len(in.token) > maxStateToken:
		return mfa.LoginResult{}, mfa.ErrInvalidToken
	}
	if f := mfa.Factor(in.mfatype); f != "" && !isFactorName(f) {
		return mfa.LoginResult{}, invalidParam("mfatype", "must be AUTHENTICATOR, EMAIL, WEBAUTHN or RECOVERY")
	}
	proof, err := proofOf(in.mfatype, in.code, in.credential)
	if err != nil {
		return mfa.LoginResult{}, err
	}
	return h.svc.CompleteChallenge(h.withInfo(r, User{}).Context(), in.token, proof)
}

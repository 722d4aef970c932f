package httpx

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/mfakit/mfakit/mfa"
)

// ResetRequest is the body of resetMyQRCodeEnroll. Without a user (the
// lost phone) StateToken, from the password step of a sign-in, names the
// user; for a user both StateToken and Username are absent (or Username
// matches the user). Username is accepted for clients written against
// older versions, and never names a user by itself (S23).
//
// With "mfatype":"WEBAUTHN" the proof is "credential", a passkey's
// assertion (an AuthenticationResponseJSON) instead of "totp": answering
// PUT /oauth/users/mfa/webauthn/challenge for a user, or the sign-in's
// request options (the state token answer's "publicKey") with a
// stateToken.
type ResetRequest struct {
	Username   string          `json:"username" validate:"max=320"`
	StateToken string          `json:"stateToken" validate:"max=1024"`
	MFAType    string          `json:"mfatype" validate:"required,oneof=AUTHENTICATOR EMAIL RECOVERY WEBAUTHN"`
	TOTP       string          `json:"totp" validate:"max=32"`
	Credential json.RawMessage `json:"credential"`
}

// ResetMyQRCodeEnroll serves POST resetMyQRCodeEnroll. The caller proves a
// factor the user still holds (S13):
//   - a user (see Auth.CheckUser: a Bearer token, a session cookie):
//     {"mfatype":"AUTHENTICATOR"|"RECOVERY","totp":"..."}, or
//     {"mfatype":"WEBAUTHN","credential":{...}}
//   - anyone else (the lost phone): "stateToken" from the password step of
//     a sign-in, with "mfatype":"AUTHENTICATOR", "EMAIL" (the code the
//     challenge sent, after switching it to EMAIL) or "RECOVERY"; and,
//     when Config.Clients is set, Basic client credentials.
//
// Client credentials are public in browser and mobile apps, so they never
// stand in for the password (S23): without a user, a body that names a
// user only by "username" gets the answer of a wrong code, and nothing of
// that user is read, counted or changed. A request that offers user
// credentials (an Authorization header other than Basic) which the
// Authenticator refuses gets 401, not the state-token path.
func (h *Handlers) ResetMyQRCodeEnroll() http.Handler {
	return h.endpoint(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		u, authErr := h.auth.CheckUser(r)
		viaToken := false
		switch {
		case authErr == nil:
			r = h.withInfo(r, u)
		case !errors.Is(authErr, ErrUnauthorized) || offersUserCredentials(r):
			h.auth.refuse(w, r, authErr, h.auth.userSchemes...)
			return
		default:
			// No user: the body's state token must prove the password step.
			if h.auth.clients != nil {
				if _, err := h.auth.CheckClient(r); err != nil {
					h.auth.refuse(w, r, err, append([]string{schemeBasic}, h.auth.userSchemes...)...)
					return
				}
			}
			r = h.withInfo(r, User{})
			viaToken = true
		}
		user := u.Username
		var req ResetRequest
		if err := decodeJSON(r, h.proofLimit, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		if req.TOTP == "" && len(req.Credential) == 0 && req.MFAType != string(mfa.WebAuthn) {
			h.fail(w, r, invalidParam("totp", "is required"))
			return
		}
		proof, err := proofOf(req.MFAType, req.TOTP, req.Credential)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		switch {
		case viaToken && req.StateToken == "":
			// Without a user only the state token names one (S23): a
			// username and a code never remove a factor. The answer is a
			// wrong code's, and nothing of the named user is read or
			// counted.
			err = mfa.ErrInvalidCode
		case viaToken && req.Username != "":
			h.fail(w, r, invalidParam("username", "must be omitted with stateToken"))
			return
		case viaToken:
			err = h.svc.ResetAuthenticatorWithChallenge(r.Context(), req.StateToken, proof)
		case req.StateToken != "":
			h.fail(w, r, invalidParam("stateToken", "is for a caller who is not signed in"))
			return
		case req.Username != "" && req.Username != user:
			h.fail(w, r, invalidParam("username", "must be omitted or name the signed-in user"))
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
		writeFactor(w, mfa.Authenticator, false)
	})
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
		writeFactor(w, mfa.Authenticator, false)
	})
}

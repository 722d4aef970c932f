package httpx

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// StateToken is the state_token object of the seed vendor's login answer.
type StateToken struct {
	MFAType   mfa.Factor `json:"mfaType,omitempty"`
	ExpiresIn string     `json:"expires_in"`
	Status    string     `json:"status"`
	Token     string     `json:"token"`
	// PublicKey is, when MFAType is WEBAUTHN, the request options for the
	// browser (a PublicKeyCredentialRequestOptionsJSON for
	// PublicKeyCredential.parseRequestOptionsFromJSON); absent otherwise.
	PublicKey json.RawMessage `json:"publicKey,omitempty"`
}

// ChallengeResponse is what a host's token endpoint answers to a password
// grant when a second factor is needed:
// {"expires_in":600,"state_token":{"mfaType":"AUTHENTICATOR","expires_in":"600","status":"VERIFY","token":"..."}}.
type ChallengeResponse struct {
	ExpiresIn  int        `json:"expires_in"`
	StateToken StateToken `json:"state_token"`
}

// NewChallengeResponse renders ch as the login answer, with lifetimes
// counted from now.
func NewChallengeResponse(ch mfa.Challenge, now time.Time) ChallengeResponse {
	// Rounded up: the token's expiry is a whole second, so a fresh one
	// reports the full lifetime.
	secs := max(0, int((ch.ExpiresAt.Sub(now)+time.Second-1)/time.Second))
	return ChallengeResponse{ExpiresIn: secs, StateToken: StateToken{MFAType: ch.Factor,
		ExpiresIn: strconv.Itoa(secs), Status: string(ch.Status), Token: ch.Token, PublicKey: ch.PublicKey}}
}

// WriteChallenge writes the state_token answer of ch (200, no-store). A
// host's token endpoint calls it after checking the password when
// mfa.Service.StartChallenge returned a status other than ChallengeNone.
func (h *Handlers) WriteChallenge(w http.ResponseWriter, ch mfa.Challenge) {
	writeJSON(w, http.StatusOK, NewChallengeResponse(ch, h.now()))
}

type switchRequest struct {
	StateToken string `json:"stateToken" validate:"required,max=1024"`
}

// SwitchChallenge serves PUT challenge?mfatype=EMAIL (a kit extension):
// with {"stateToken":"..."} (and Basic client credentials when
// Config.Clients is set) it trades a sign-in's state token for an EMAIL
// challenge (sending the code), for a user who cannot use their
// authenticator. The answer is the state_token object of the login flow;
// the old token stops working. The code goes to the address the Service's
// mfa.Config.Directory gives for the token's user, asked only after the
// token proved to be live (S26); without a Directory the answer is 409
// no_email. mfatype=AUTHENTICATOR and mfatype=WEBAUTHN switch to those
// factors the same way (the passkey is not at hand; or new request
// options once a WebAuthn challenge's 5 minutes are over); a factor the
// user does not hold is 409 not_enrolled.
func (h *Handlers) SwitchChallenge() http.Handler {
	return h.endpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request) {
		if h.auth.clients != nil {
			if _, err := h.auth.CheckClient(r); err != nil {
				h.auth.refuse(w, r, err, schemeBasic)
				return
			}
		}
		r = h.withInfo(r, User{})
		to, err := switchTarget(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		var req switchRequest
		if err := decodeJSON(r, h.cfg.MaxBodyBytes, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		ch, err := h.svc.SwitchChallenge(r.Context(), req.StateToken, to, h.addressOf)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.WriteChallenge(w, ch)
	})
}

// switchTarget reads the factor a challenge switch asks for: the mfatype
// query parameter, EMAIL, AUTHENTICATOR or WEBAUTHN.
func switchTarget(r *http.Request) (mfa.Factor, error) {
	got := r.URL.Query()["mfatype"]
	const reason = "must be EMAIL, AUTHENTICATOR or WEBAUTHN"
	switch {
	case len(got) == 0 || got[0] == "":
		return "", invalidParam("mfatype", "query parameter is required and "+reason)
	case len(got) > 1:
		return "", invalidParam("mfatype", reason)
	}
	switch f := mfa.Factor(got[0]); f {
	case mfa.Email, mfa.Authenticator, mfa.WebAuthn:
		return f, nil
	}
	return "", invalidParam("mfatype", reason)
}

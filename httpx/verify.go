package httpx

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/mfakit/mfakit/mfa"
)

// CodeRequest is the body of the verify endpoints.
type CodeRequest struct {
	MFAType string `json:"mfatype" validate:"required,oneof=AUTHENTICATOR EMAIL"`
	TOTP    string `json:"totp" validate:"required,otpcode"`
}

// FactorResponse is the body of a successful verify or reset.
type FactorResponse struct {
	MFAType  mfa.Factor `json:"mfatype"`
	Verified bool       `json:"verified"`
}

// verifyEndpoint serves a PUT whose body is a CodeRequest for factor f:
// verify checks the caller's code, Config.OnVerified hears of it, and the
// answer is f verified.
func (h *Handlers) verifyEndpoint(f mfa.Factor, verify func(ctx context.Context, user, code string) error) http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		var req CodeRequest
		if err := decodeJSON(r, h.cfg.MaxBodyBytes, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		if req.MFAType != string(f) {
			h.fail(w, r, invalidParam("mfatype", "must be "+string(f)))
			return
		}
		if err := verify(r.Context(), u.Username, req.TOTP); err != nil {
			h.fail(w, r, err)
			return
		}
		if h.cfg.OnVerified != nil {
			h.cfg.OnVerified(w, r, u, f)
		}
		writeFactor(w, f, true)
	})
}

// otpReason is why a code that is not of the shape isOTP checks is refused.
const otpReason = "must be 6 to 8 digits"

// isOTP reports whether s has the shape of every one-time code mfakit
// issues: 6 to 8 ASCII digits. It is the one shape check of a code, used
// by the otpcode validation tag and by checkProofCode.
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

// checkProofCode refuses, before the domain counts it, the code of a
// proof that cannot be right (the "totp" field): a one-time code that is
// not 6 to 8 digits, or a recovery code that is empty or over 32 bytes.
// A WEBAUTHN proof's assertion is checked by proofOf.
// An empty one-time code passes: an ENROLL challenge needs none, and the
// JSON endpoints require the field.
func checkProofCode(p mfa.Proof) error {
	switch {
	case p.Factor == mfa.WebAuthn:
		return nil // an assertion: proofOf checked its shape
	case p.Factor == mfa.Recovery && (p.Code == "" || len(p.Code) > 32):
		return invalidParam("totp", "must be a recovery code")
	case p.Factor != mfa.Recovery && p.Code != "" && !isOTP(p.Code):
		return invalidParam("totp", otpReason)
	}
	return nil
}

// CheckRequest is the body of PUT /oauth/users/mfa/verify: a current
// code of the caller's authenticator, {"mfatype":"AUTHENTICATOR",
// "totp":"123456"}, or an assertion of one of their passkeys answering
// the options of PUT /oauth/users/mfa/webauthn/challenge,
// {"mfatype":"WEBAUTHN","credential":{...AuthenticationResponseJSON...}}.
type CheckRequest struct {
	MFAType    string          `json:"mfatype" validate:"required,oneof=AUTHENTICATOR WEBAUTHN"`
	TOTP       string          `json:"totp" validate:"max=64"`
	Credential json.RawMessage `json:"credential"`
}

// checkEndpoint serves CheckCode: the caller's authenticator code or a
// passkey assertion is checked (single use, counted toward lockout),
// Config.OnVerified hears of it, and the answer is the factor verified.
func (h *Handlers) checkEndpoint() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		var req CheckRequest
		if err := decodeJSON(r, h.proofLimit, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		proof, err := proofOf(req.MFAType, req.TOTP, req.Credential)
		switch {
		case err != nil:
		case proof.Factor == mfa.Authenticator && proof.Code == "":
			err = invalidParam("totp", "is required")
		case proof.Factor == mfa.WebAuthn:
			err = h.svc.CheckWebAuthn(r.Context(), u.Username, []byte(proof.Code))
		default:
			err = h.svc.CheckAuthenticator(r.Context(), u.Username, proof.Code)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if h.cfg.OnVerified != nil {
			h.cfg.OnVerified(w, r, u, proof.Factor)
		}
		writeFactor(w, proof.Factor, true)
	})
}

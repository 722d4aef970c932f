package httpx

import (
	"context"
	"net/http"

	"github.com/mfakit/mfakit/mfa"
)

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

// verifyEndpoint serves a PUT whose body is a CodeRequest for factor f:
// verify checks the caller's code, and the answer is f verified.
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

package httpx

import (
	"net/http"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// EmailResponse is the body of a successful enrollEmail.
type EmailResponse struct {
	MFAType   mfa.Factor `json:"mfatype"`
	Sent      bool       `json:"sent"`
	ExpiresIn int        `json:"expires_in"`
}

// EnrollEmail serves PUT enrollEmail?mfatype=EMAIL: it emails a one-time
// code to the address the Authenticator reports for the caller (User.Email).
func (h *Handlers) EnrollEmail() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		if err := requireQuery(r, mfa.Email); err != nil {
			h.fail(w, r, err)
			return
		}
		if err := h.stepUpForSecondFactor(r, u, mfa.Email); err != nil {
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
			return
		}
		if err := h.svc.BeginEmail(r.Context(), u.Username, u.Email); err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, EmailResponse{MFAType: mfa.Email, Sent: true,
			ExpiresIn: int(h.svc.Config().EmailCodeTTL / time.Second)})
	})
}

// VerifyEmail serves PUT verifyEmail with {"mfatype":"EMAIL","totp":"..."}:
// it verifies the pending email enrollment with the code that was sent.
func (h *Handlers) VerifyEmail() http.Handler {
	return h.verifyEndpoint(mfa.Email, h.svc.VerifyEmail)
}

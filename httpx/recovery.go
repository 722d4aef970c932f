package httpx

import (
	"errors"
	"net/http"
)

// RecoveryCodesResponse is the body of POST recoveryCodes: the new codes,
// shown this once.
type RecoveryCodesResponse struct {
	RecoveryCodes []string `json:"recoveryCodes"`
}

// RecoveryStatusResponse is the body of GET recoveryCodes.
type RecoveryStatusResponse struct {
	Remaining int `json:"remaining"`
}

// RecoveryCodes serves /oauth/users/mfa/recoveryCodes (a kit extension):
// GET answers how many unused codes the caller has; POST generates a new
// set (invalidating the old), which needs a recent MFA (step-up), and
// answers the codes once with Cache-Control: no-store.
func (h *Handlers) RecoveryCodes() http.Handler {
	return h.userEndpoint("GET, POST", func(w http.ResponseWriter, r *http.Request, u User) {
		if r.Method == http.MethodGet {
			n, err := h.svc.RecoveryCodesLeft(r.Context(), u.Username)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, RecoveryStatusResponse{Remaining: n})
			return
		}
		if err := h.auth.stepUp(r.Context(), u, h.cfg.StepUpMaxAge); err != nil {
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
			return
		}
		codes, err := h.svc.GenerateRecoveryCodes(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		// An admin reset ends the user's sessions, then removes their
		// recovery codes (S24). A set written by a request that was
		// authenticated before the sessions ended, and stored after the
		// codes were removed, would survive: ask the Authenticator again,
		// and take the set back if the session is gone.
		if _, err := h.auth.authn.AuthenticateRequest(r); errors.Is(err, ErrUnauthorized) {
			if rerr := h.svc.RevokeRecoveryCodes(r.Context(), u.Username); rerr != nil {
				h.fail(w, r, rerr)
				return
			}
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
			return
		}
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, RecoveryCodesResponse{RecoveryCodes: codes})
	})
}

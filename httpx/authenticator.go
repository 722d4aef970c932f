package httpx

import (
	"encoding/base64"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// QRCodeResponse is the JSON body of associateQRCode.
type QRCodeResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauthUrl"`
	QRCode     string `json:"qrCode"`
	ExpiresIn  int    `json:"expires_in"`
}

type associateRequest struct {
	MFAType string `json:"mfatype" validate:"omitempty,eq=AUTHENTICATOR"`
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
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
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
			writeJSON(w, http.StatusOK, QRCodeResponse{Secret: key.Secret, OTPAuthURL: key.URI,
				QRCode:    "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
				ExpiresIn: int(key.ExpiresAt.Sub(h.now()).Round(time.Second) / time.Second)})
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

// VerifyQRCodeEnroll serves PUT verifyQRCodeEnroll with
// {"mfatype":"AUTHENTICATOR","totp":"123456"}: it verifies the pending
// authenticator enrollment.
func (h *Handlers) VerifyQRCodeEnroll() http.Handler {
	return h.verifyEndpoint(mfa.Authenticator, h.svc.VerifyAuthenticator)
}

// CheckCode serves PUT /oauth/users/mfa/verify (a kit extension) with
// {"mfatype":"AUTHENTICATOR","totp":"123456"}: it checks a code of the
// caller's verified authenticator — single use, counted toward lockout —
// for hosts that re-verify inside a session (say, before a payment) and
// then refresh the session's MFA time. With
// {"mfatype":"WEBAUTHN","credential":{...}} it checks a passkey's
// assertion answering PUT /oauth/users/mfa/webauthn/challenge instead
// (see CheckRequest).
func (h *Handlers) CheckCode() http.Handler {
	return h.checkEndpoint()
}

package httpx

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// WebAuthnEnrollRequest is the body of verifyWebAuthnEnroll: a label for
// the new credential (empty: the authenticator's name) and the browser's
// answer to the creation options, as PublicKeyCredential.toJSON() gives
// it (a RegistrationResponseJSON).
type WebAuthnEnrollRequest struct {
	MFAType    string          `json:"mfatype" validate:"required,eq=WEBAUTHN"`
	Name       string          `json:"name" validate:"max=64"`
	Credential json.RawMessage `json:"credential"`
}

// WebAuthnResponse is the body of a successful verifyWebAuthnEnroll, and
// of the removal of a credential (Verified then says whether the user
// still holds one).
type WebAuthnResponse struct {
	MFAType  mfa.Factor `json:"mfatype"`
	Verified bool       `json:"verified"`
	// ID is the credential's ID, base64url without padding.
	ID string `json:"id"`
}

// CredentialJSON is one credential in GET /oauth/users/mfa/webauthn.
type CredentialJSON struct {
	// ID is the credential ID, base64url without padding: the {id} of
	// DELETE /oauth/users/mfa/webauthn/{id}.
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"` // null before the first use
}

// CredentialsResponse is the body of GET /oauth/users/mfa/webauthn.
type CredentialsResponse struct {
	Credentials []CredentialJSON `json:"credentials"`
}

type associateWebAuthnRequest struct {
	MFAType string `json:"mfatype" validate:"omitempty,eq=WEBAUTHN"`
}

var b64url = base64.RawURLEncoding

// AssociateWebAuthn serves PUT associateWebAuthn?mfatype=WEBAUTHN: it
// starts adding a passkey and answers the creation options
// {"publicKey":{...}} (W3C Level 3 JSON: the value of "publicKey" goes to
// PublicKeyCredential.parseCreationOptionsFromJSON). The challenge is
// valid 5 minutes, once. A user who holds a verified factor already
// (a passkey included) needs a recent MFA, as for any second factor.
func (h *Handlers) AssociateWebAuthn() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		if err := requireQuery(r, mfa.WebAuthn); err != nil {
			h.fail(w, r, err)
			return
		}
		var req associateWebAuthnRequest
		if err := decodeJSON(r, h.cfg.MaxBodyBytes, &req, true); err != nil {
			h.fail(w, r, err)
			return
		}
		if err := h.stepUpForSecondFactor(r, u, ""); err != nil {
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
			return
		}
		options, err := h.svc.BeginWebAuthnEnrollment(r.Context(), u.Username, "")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeRawJSON(w, options)
	})
}

// VerifyWebAuthnEnroll serves PUT verifyWebAuthnEnroll with
// {"mfatype":"WEBAUTHN","name":"...","credential":{...}}: it verifies the
// browser's answer to the options of associateWebAuthn and stores the
// credential. Config.OnVerified hears of it, as of any verified factor.
func (h *Handlers) VerifyWebAuthnEnroll() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		var req WebAuthnEnrollRequest
		if err := decodeJSON(r, h.cfg.MaxWebAuthnBodyBytes, &req, false); err != nil {
			h.fail(w, r, err)
			return
		}
		if err := checkCredentialJSON(req.Credential); err != nil {
			h.fail(w, r, err)
			return
		}
		c, err := h.svc.FinishWebAuthnEnrollment(r.Context(), u.Username, req.Name, req.Credential)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if h.cfg.OnVerified != nil {
			h.cfg.OnVerified(w, r, u, mfa.WebAuthn)
		}
		writeJSON(w, http.StatusOK, WebAuthnResponse{MFAType: mfa.WebAuthn, Verified: true, ID: b64url.EncodeToString(c.ID)})
	})
}

// WebAuthnCredentials serves GET /oauth/users/mfa/webauthn: the caller's
// passkeys, oldest first, with no key material.
func (h *Handlers) WebAuthnCredentials() http.Handler {
	return h.userEndpoint(http.MethodGet, func(w http.ResponseWriter, r *http.Request, u User) {
		list, err := h.svc.ListCredentials(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out := CredentialsResponse{Credentials: make([]CredentialJSON, len(list))}
		for i, c := range list {
			out.Credentials[i] = CredentialJSON{ID: b64url.EncodeToString(c.ID), Name: c.Name, CreatedAt: c.CreatedAt.UTC()}
			if !c.LastUsedAt.IsZero() {
				used := c.LastUsedAt.UTC()
				out.Credentials[i].LastUsedAt = &used
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// RemoveWebAuthnCredential serves DELETE /oauth/users/mfa/webauthn/{id}:
// it removes the caller's credential whose ID (base64url) is the path's
// {id}, after a recent MFA (step-up, S33). Removing the last factor
// follows the reset rules (S24). The id comes from r.PathValue("id");
// hosts on other routers set it with r.SetPathValue.
func (h *Handlers) RemoveWebAuthnCredential() http.Handler {
	return h.userEndpoint(http.MethodDelete, func(w http.ResponseWriter, r *http.Request, u User) {
		if err := h.auth.stepUp(r.Context(), u, h.cfg.StepUpMaxAge); err != nil {
			h.auth.refuse(w, r, err, h.auth.userSchemes...)
			return
		}
		id, err := b64url.DecodeString(r.PathValue("id"))
		if err != nil || len(id) == 0 {
			h.fail(w, r, invalidParam("id", "must be a credential ID in base64url without padding"))
			return
		}
		if err := h.svc.RemoveCredential(r.Context(), u.Username, id); err != nil {
			h.fail(w, r, err)
			return
		}
		left, err := h.svc.ListCredentials(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, WebAuthnResponse{MFAType: mfa.WebAuthn, Verified: len(left) > 0, ID: b64url.EncodeToString(id)})
	})
}

// WebAuthnChallenge serves PUT /oauth/users/mfa/webauthn/challenge (a kit
// extension): request options {"publicKey":{...}} for an assertion of one
// of the caller's passkeys, to answer in PUT /oauth/users/mfa/verify
// (step-up) or resetMyQRCodeEnroll (self reset) with
// {"mfatype":"WEBAUTHN","credential":{...}}. The challenge is valid 5
// minutes, once.
func (h *Handlers) WebAuthnChallenge() http.Handler {
	return h.userEndpoint(http.MethodPut, func(w http.ResponseWriter, r *http.Request, u User) {
		options, err := h.svc.BeginWebAuthnCheck(r.Context(), u.Username)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeRawJSON(w, options)
	})
}

// writeRawJSON writes b, a JSON document, with 200 and no-store.
func writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// checkCredentialJSON refuses a "credential" that is missing, is not a
// JSON object, or repeats a key at any depth (S28: also when it came as
// the text of a form field), before the domain reads it.
func checkCredentialJSON(c []byte) error {
	c = bytes.TrimSpace(c)
	switch {
	case len(c) == 0:
		return invalidParam("credential", "is required")
	case c[0] != '{' || !json.Valid(c):
		return invalidParam("credential", "must be a JSON object: the credential's toJSON()")
	case len(c) > mfa.MaxWebAuthnJSON:
		return invalidParam("credential", "is too long")
	}
	if err := checkStrict(c, nil); err != nil {
		if p, ok := err.(*Problem); ok && len(p.InvalidParams) == 1 {
			return invalidParam("credential."+p.InvalidParams[0].Name, p.InvalidParams[0].Reason)
		}
		return err
	}
	return nil
}

// proofOf is the proof a request states with mfatype, a code ("totp" or
// "code") and a WebAuthn credential (an AuthenticationResponseJSON): a
// credential makes it a WEBAUTHN proof, which takes no code.
func proofOf(mfatype, code string, credential []byte) (mfa.Proof, error) {
	p := mfa.Proof{Factor: mfa.Factor(mfatype), Code: code}
	switch {
	case len(credential) > 0:
		if p.Factor != "" && p.Factor != mfa.WebAuthn {
			return p, invalidParam("credential", "is for mfatype WEBAUTHN")
		}
		if code != "" {
			return p, invalidParam("totp", "give a code or a credential, not both")
		}
		if err := checkCredentialJSON(credential); err != nil {
			return p, err
		}
		p.Factor, p.Code = mfa.WebAuthn, string(credential)
	case p.Factor == mfa.WebAuthn:
		return p, invalidParam("credential", "is required with mfatype WEBAUTHN")
	}
	return p, checkProofCode(p)
}

// isFactorName reports whether f names a factor a user holds, or RECOVERY.
func isFactorName(f mfa.Factor) bool {
	return slices.Contains([]mfa.Factor{mfa.Authenticator, mfa.Email, mfa.WebAuthn, mfa.Recovery}, f)
}

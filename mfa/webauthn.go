package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/mfakit/mfakit/storage"
)

// Purposes of the WebAuthn challenges a Service stores as one-time codes
// (keyed hashes of the challenge, S31): at most one of each per user.
const (
	purposeWebAuthnRegister = "webauthn-register" // adding a credential
	purposeWebAuthnLogin    = "webauthn-login"    // a sign-in challenge of factor WEBAUTHN
	purposeWebAuthnCheck    = "webauthn-check"    // step-up and self reset (BeginWebAuthnCheck)
	purposeUserHandle       = "webauthn-user-handle"
)

const (
	// webAuthnChallengeTTL is how long a WebAuthn challenge can be
	// answered (S31).
	webAuthnChallengeTTL = 5 * time.Minute
	// challengeRandom is the random part of every challenge: 32 bytes
	// (S31 asks at least 16).
	challengeRandom = 32
	// MaxCredentials is how many WebAuthn credentials one user may hold.
	MaxCredentials = 20
	// MaxWebAuthnJSON caps the JSON of a registration or an assertion
	// the Service reads.
	MaxWebAuthnJSON = 16 << 10
)

// CredentialInfo describes one WebAuthn credential of a user; it holds no
// key material.
type CredentialInfo struct {
	// ID is the credential ID (raw bytes; the API shows it base64url).
	ID []byte
	// Name labels it for the user.
	Name string
	// CreatedAt is when it was registered; LastUsedAt when it last
	// passed a check (zero before).
	CreatedAt, LastUsedAt time.Time
}

// credentialData is what Credential.Data holds: what go-webauthn needs to
// verify assertions, and the flags it checks (S32, BE/BS consistency).
type credentialData struct {
	PublicKey         []byte   `json:"pk"`
	AttestationType   string   `json:"at,omitempty"`
	AttestationFormat string   `json:"af,omitempty"`
	AAGUID            []byte   `json:"aaguid,omitempty"`
	Transports        []string `json:"tr,omitempty"`
	// Flags are the authenticator data flags last seen (UP, UV, BE, BS).
	Flags      byte   `json:"fl"`
	Attachment string `json:"aa,omitempty"`
	// UserHandle is the user.id the credential was created for.
	UserHandle []byte `json:"uh"`
}

// userCred is a stored credential with its Data decoded.
type userCred struct {
	stored storage.Credential
	data   credentialData
}

func (c userCred) webauthn() webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(c.data.Transports))
	for i, t := range c.data.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID: c.stored.ID, PublicKey: c.data.PublicKey,
		AttestationType: c.data.AttestationType, AttestationFormat: c.data.AttestationFormat,
		Transport: transports,
		Flags:     webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(c.data.Flags)),
		Authenticator: webauthn.Authenticator{AAGUID: c.data.AAGUID, SignCount: c.stored.SignCount,
			Attachment: protocol.AuthenticatorAttachment(c.data.Attachment)},
	}
}

// waUser is a user as go-webauthn sees one.
type waUser struct {
	handle        []byte
	name, display string
	creds         []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.display }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// credentials reads the user's WebAuthn credentials, oldest first.
func (s *Service) credentials(ctx context.Context, user string) ([]userCred, error) {
	stored, err := s.creds.Credentials(ctx, user)
	if err != nil {
		return nil, s.internal(ctx, "read credentials", err)
	}
	out := make([]userCred, len(stored))
	for i, c := range stored {
		out[i].stored = c
		if err := json.Unmarshal(c.Data, &out[i].data); err != nil || len(out[i].data.PublicKey) == 0 {
			return nil, s.internal(ctx, "read credentials", fmt.Errorf("credential data of %s unreadable: %v", b64.EncodeToString(c.ID), err))
		}
	}
	return out, nil
}

// userHandle is the user.id the user's new credentials get: the one of
// the credentials they hold already, so an authenticator sees one account
// (and a key rotation changes nothing), else a keyed hash of the username.
// It is opaque and never the username or email (the spec forbids personal
// data there).
func (s *Service) userHandle(user string, creds []userCred) []byte {
	for _, c := range creds {
		if n := len(c.data.UserHandle); n > 0 && n <= 64 {
			return c.data.UserHandle
		}
	}
	return s.keys.codeHash(user, purposeUserHandle, "")
}

// webAuthnOn reports whether the WEBAUTHN factor is enabled.
func (s *Service) webAuthnOn() bool { return s.wa != nil }

// BeginWebAuthnEnrollment starts adding a passkey or security key to the
// user's account. It returns the creation options for the browser, in the
// W3C WebAuthn Level 3 JSON form {"publicKey":{...}} (the value of
// "publicKey" is a PublicKeyCredentialCreationOptionsJSON: pass it to
// PublicKeyCredential.parseCreationOptionsFromJSON). The challenge is
// random, single use, bound to the user and valid for 5 minutes (S31); it
// replaces the user's earlier enrollment challenge. excludeCredentials
// lists the user's credentials, so an authenticator is not added twice.
// displayName is shown by the authenticator (default: user). It fails with
// ErrCredentialLimit when the user holds MaxCredentials already.
func (s *Service) BeginWebAuthnEnrollment(ctx context.Context, user, displayName string) (json.RawMessage, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	if !s.webAuthnOn() {
		return nil, ErrFactorDisabled
	}
	creds, err := s.credentials(ctx, user)
	if err != nil {
		return nil, err
	}
	if len(creds) >= MaxCredentials {
		return nil, ErrCredentialLimit
	}
	if displayName = truncateUTF8(strings.TrimSpace(displayName), 64); displayName == "" {
		displayName = truncateUTF8(user, 64)
	}
	handle := s.userHandle(user, creds)
	// The challenge carries the user handle after its random part, so the
	// handle the authenticator stored is known at finish whatever
	// happened meanwhile (a key rotation, say). The stored hash binds both.
	challenge := make([]byte, challengeRandom, challengeRandom+len(handle))
	rand.Read(challenge)
	challenge = append(challenge, handle...)
	exclude := make([]protocol.CredentialDescriptor, len(creds))
	for i, c := range creds {
		cred := c.webauthn()
		exclude[i] = cred.Descriptor()
	}
	creation, _, err := s.wa.BeginRegistration(&waUser{handle: handle, name: user, display: displayName},
		webauthn.WithExclusions(exclude),
		func(o *protocol.PublicKeyCredentialCreationOptions) error { o.Challenge = challenge; return nil })
	if err != nil {
		return nil, s.internal(ctx, "begin webauthn enrollment", err)
	}
	options, err := json.Marshal(creation)
	if err != nil {
		return nil, s.internal(ctx, "begin webauthn enrollment", err)
	}
	if err := s.putChallenge(ctx, user, purposeWebAuthnRegister, challenge, s.cfg.Now().Add(webAuthnChallengeTTL)); err != nil {
		return nil, err
	}
	s.emit(ctx, EventEnrollStarted, user, WebAuthn, "")
	return options, nil
}

// putChallenge stores the keyed hash of challenge as the user's one-time
// code of purpose, until expires.
func (s *Service) putChallenge(ctx context.Context, user, purpose string, challenge []byte, expires time.Time) error {
	err := s.store.PutCode(ctx, storage.Code{User: user, Purpose: purpose,
		Hash: s.keys.codeHash(user, purpose, b64.EncodeToString(challenge)), ExpiresAt: expires})
	if err != nil {
		return s.internal(ctx, "store webauthn challenge", err)
	}
	return nil
}

// consumeChallenge uses up the challenge of purpose that a ceremony
// answered: it must be one the Service issued to user for purpose, not
// used and not expired (S31).
func (s *Service) consumeChallenge(ctx context.Context, user, purpose, challenge string) error {
	switch err := s.consumeCode(ctx, user, purpose, challenge); {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrExpired):
		return ErrChallengeExpired
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrCodeMismatch):
		return fmt.Errorf("%w: the challenge is not one issued for this, or was used already", ErrInvalidCredential)
	default:
		return s.internal(ctx, "consume webauthn challenge", err)
	}
}

// invalidCredential wraps why go-webauthn refused a ceremony.
func invalidCredential(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		why := pe.Details
		if pe.DevInfo != "" {
			why += ": " + pe.DevInfo
		}
		return fmt.Errorf("%w: %s", ErrInvalidCredential, why)
	}
	return fmt.Errorf("%w: %v", ErrInvalidCredential, err)
}

// FinishWebAuthnEnrollment verifies the browser's answer to the options of
// BeginWebAuthnEnrollment (a RegistrationResponseJSON, as
// PublicKeyCredential.toJSON() makes it) with go-webauthn — RP ID, origin,
// challenge, user presence and, as configured, user verification (S31) —
// uses the challenge up and stores the credential under name. An empty
// name becomes the authenticator's, from its AAGUID where the kit knows
// it, else "Passkey". It returns the stored credential. Errors:
// ErrInvalidCredential (malformed, or not verified), ErrChallengeExpired,
// ErrCredentialExists (the ID is registered, for this user or another,
// S32), ErrCredentialLimit, ErrInvalidName. Nothing is stored on an error.
func (s *Service) FinishWebAuthnEnrollment(ctx context.Context, user, name string, credentialJSON []byte) (CredentialInfo, error) {
	if err := checkUser(user); err != nil {
		return CredentialInfo{}, err
	}
	if !s.webAuthnOn() {
		return CredentialInfo{}, ErrFactorDisabled
	}
	name, err := cleanName(name)
	if err != nil {
		return CredentialInfo{}, err
	}
	if len(credentialJSON) == 0 || len(credentialJSON) > MaxWebAuthnJSON {
		return CredentialInfo{}, fmt.Errorf("%w: the credential must be 1 to %d bytes of JSON", ErrInvalidCredential, MaxWebAuthnJSON)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credentialJSON)
	if err != nil {
		return CredentialInfo{}, invalidCredential(err)
	}
	challengeB64 := parsed.Response.CollectedClientData.Challenge
	challenge, err := b64.DecodeString(challengeB64)
	if err != nil || len(challenge) <= challengeRandom || len(challenge) > challengeRandom+64 {
		return CredentialInfo{}, fmt.Errorf("%w: the challenge is not one the kit issues", ErrInvalidCredential)
	}
	handle := challenge[challengeRandom:]
	session := webauthn.SessionData{Challenge: challengeB64, RelyingPartyID: s.cfg.WebAuthn.RPID, UserID: handle,
		UserVerification: protocol.UserVerificationRequirement(s.cfg.WebAuthn.UserVerification),
		CredParams:       webauthn.CredentialParametersDefault()}
	cred, err := s.wa.CreateCredential(&waUser{handle: handle, name: user, display: user}, session, parsed)
	if err != nil {
		return CredentialInfo{}, invalidCredential(err)
	}
	if len(cred.ID) == 0 || len(cred.ID) > storage.MaxCredentialIDLen {
		return CredentialInfo{}, fmt.Errorf("%w: the credential ID must be 1 to %d bytes", ErrInvalidCredential, storage.MaxCredentialIDLen)
	}
	if err := s.consumeChallenge(ctx, user, purposeWebAuthnRegister, challengeB64); err != nil {
		return CredentialInfo{}, err
	}
	held, err := s.creds.Credentials(ctx, user)
	if err != nil {
		return CredentialInfo{}, s.internal(ctx, "add credential", err)
	}
	if len(held) >= MaxCredentials {
		return CredentialInfo{}, ErrCredentialLimit
	}
	if name == "" {
		name = authenticatorName(cred.Authenticator.AAGUID)
	}
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	data, err := json.Marshal(credentialData{PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		AttestationFormat: cred.AttestationFormat, AAGUID: cred.Authenticator.AAGUID, Transports: transports,
		Flags: byte(cred.Flags.ProtocolValue()), Attachment: string(cred.Authenticator.Attachment),
		UserHandle: handle})
	if err == nil && len(data) > storage.MaxCredentialDataLen {
		err = fmt.Errorf("%w: the credential's data is over %d bytes", ErrInvalidCredential, storage.MaxCredentialDataLen)
	}
	if err != nil {
		return CredentialInfo{}, err
	}
	now := s.cfg.Now()
	c := storage.Credential{User: user, ID: cred.ID, Name: name, Data: data,
		SignCount: cred.Authenticator.SignCount, CreatedAt: now}
	switch err := s.creds.AddCredential(ctx, c); {
	case errors.Is(err, storage.ErrCredentialExists):
		return CredentialInfo{}, ErrCredentialExists
	case err != nil:
		return CredentialInfo{}, s.internal(ctx, "add credential", err)
	}
	s.emitCredential(ctx, EventEnrollVerified, user, "", c)
	s.notifyNamed(ctx, user, passkeyName(name), "added")
	return CredentialInfo{ID: c.ID, Name: c.Name, CreatedAt: c.CreatedAt}, nil
}

// ListCredentials returns the user's WebAuthn credentials, oldest first.
func (s *Service) ListCredentials(ctx context.Context, user string) ([]CredentialInfo, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	if !s.webAuthnOn() {
		return nil, ErrFactorDisabled
	}
	stored, err := s.creds.Credentials(ctx, user)
	if err != nil {
		return nil, s.internal(ctx, "list credentials", err)
	}
	out := make([]CredentialInfo, len(stored))
	for i, c := range stored {
		out[i] = CredentialInfo{ID: c.ID, Name: c.Name, CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt}
	}
	return out, nil
}

// RemoveCredential removes the user's credential id (S33). The HTTP layer
// asks for a recent MFA first; a Go caller must do the same. In-flight
// sign-ins stop working (S15); when it was the user's last factor, the
// reset rules of S24 apply as for an authenticator reset: recovery codes
// go and Config.EndSessions is called. The user is sent a change notice
// naming the credential (S17). A missing id is ErrCredentialNotFound.
func (s *Service) RemoveCredential(ctx context.Context, user string, id []byte) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if !s.webAuthnOn() {
		return ErrFactorDisabled
	}
	if len(id) == 0 || len(id) > storage.MaxCredentialIDLen {
		return ErrCredentialNotFound
	}
	stored, err := s.creds.Credentials(ctx, user)
	if err != nil {
		return s.internal(ctx, "remove credential", err)
	}
	var gone storage.Credential
	for _, c := range stored {
		if bytes.Equal(c.ID, id) {
			gone = c
		}
	}
	if gone.ID == nil {
		return ErrCredentialNotFound
	}
	existed, err := s.creds.DeleteCredential(ctx, user, id)
	if err != nil {
		return s.internal(ctx, "remove credential", err)
	}
	if !existed {
		return ErrCredentialNotFound // removed meanwhile by another request
	}
	if len(stored) == 1 {
		if err := s.store.ResetAttempts(ctx, user, WebAuthn); err != nil {
			return s.internal(ctx, "remove credential", err)
		}
	}
	return s.closeWaysBack(ctx, user, WebAuthn, EventCredentialRemoved, &gone)
}

package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/mfakit/mfakit/storage"
)

// BeginWebAuthnCheck returns request options for an assertion of one of
// the user's credentials, in the form {"publicKey":{...}} (the value of
// "publicKey" is a PublicKeyCredentialRequestOptionsJSON for
// PublicKeyCredential.parseRequestOptionsFromJSON), for a check outside
// sign-in: a step-up (CheckWebAuthn) or the proof of a self reset. The
// challenge is single use and valid 5 minutes; it replaces the user's
// earlier one of this kind. A user without credentials gets
// ErrNotEnrolled.
func (s *Service) BeginWebAuthnCheck(ctx context.Context, user string) (json.RawMessage, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	if !s.webAuthnOn() {
		return nil, ErrFactorDisabled
	}
	assertion, err := s.requestOptions(ctx, user, purposeWebAuthnCheck, s.cfg.Now().Add(webAuthnChallengeTTL))
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(assertion)
	if err != nil {
		return nil, s.internal(ctx, "begin webauthn check", err)
	}
	return out, nil
}

// requestOptions makes request options allowing every credential of the
// user, with a fresh challenge stored under purpose until expires.
func (s *Service) requestOptions(ctx context.Context, user, purpose string, expires time.Time) (*protocol.CredentialAssertion, error) {
	creds, err := s.credentials(ctx, user)
	if err != nil {
		return nil, err
	}
	if len(creds) == 0 {
		return nil, ErrNotEnrolled
	}
	wcreds := make([]webauthn.Credential, len(creds))
	for i, c := range creds {
		wcreds[i] = c.webauthn()
	}
	challenge := make([]byte, challengeRandom)
	rand.Read(challenge)
	assertion, _, err := s.wa.BeginLogin(&waUser{handle: s.userHandle(user, creds), name: user, creds: wcreds},
		webauthn.WithChallenge(challenge))
	if err != nil {
		return nil, s.internal(ctx, "webauthn request options", err)
	}
	if err := s.putChallenge(ctx, user, purpose, challenge, expires); err != nil {
		return nil, err
	}
	return assertion, nil
}

// CheckWebAuthn accepts an assertion (an AuthenticationResponseJSON, as
// PublicKeyCredential.toJSON() makes it) answering the options of
// BeginWebAuthnCheck, for a step-up or the proof of a self reset. See
// checkAssertion for what is checked; failures count toward lockout of
// WEBAUTHN like every code check (S8, S22, S33).
func (s *Service) CheckWebAuthn(ctx context.Context, user string, assertionJSON []byte) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if !s.webAuthnOn() {
		return ErrFactorDisabled
	}
	return s.checkAssertion(ctx, user, purposeWebAuthnCheck, assertionJSON)
}

// checkAssertion checks an assertion of one of the user's credentials
// against the challenge stored under purpose. The check is reserved before
// anything is verified (S22). go-webauthn verifies the signature, RP ID,
// origin, user presence and, as configured, user verification, and that
// the credential belongs to the user and keeps its backup eligibility
// (S31); then the challenge is used up (single use, expiring) and the
// signature counter and flags are stored. A counter that did not increase
// (when non-zero) is refused as a possible clone: an audit event
// clone_suspected, and nothing of the credential is saved (S32).
func (s *Service) checkAssertion(ctx context.Context, user, purpose string, raw []byte) error {
	a, err := s.reserve(ctx, user, WebAuthn)
	if err != nil {
		return err
	}
	creds, err := s.credentials(ctx, user)
	if err != nil {
		return err
	}
	if len(raw) == 0 || len(raw) > MaxWebAuthnJSON {
		return s.failed(ctx, user, WebAuthn, a, fmt.Errorf("%w: the assertion must be 1 to %d bytes of JSON", ErrInvalidCredential, MaxWebAuthnJSON))
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return s.failed(ctx, user, WebAuthn, a, invalidCredential(err))
	}
	if len(creds) == 0 {
		return s.failed(ctx, user, WebAuthn, a, ErrNotEnrolled)
	}
	idx := -1
	wcreds := make([]webauthn.Credential, len(creds))
	allowed := make([][]byte, len(creds))
	for i, c := range creds {
		wcreds[i], allowed[i] = c.webauthn(), c.stored.ID
		if bytes.Equal(c.stored.ID, parsed.RawID) {
			idx = i
		}
	}
	if idx < 0 {
		return s.failed(ctx, user, WebAuthn, a, fmt.Errorf("%w: not a credential of this user", ErrInvalidCredential))
	}
	cred := creds[idx]
	handle := cred.data.UserHandle
	challenge := parsed.Response.CollectedClientData.Challenge
	session := webauthn.SessionData{Challenge: challenge, RelyingPartyID: s.cfg.WebAuthn.RPID, UserID: handle,
		AllowedCredentialIDs: allowed,
		UserVerification:     protocol.UserVerificationRequirement(s.cfg.WebAuthn.UserVerification)}
	checked, err := s.wa.ValidateLogin(&waUser{handle: handle, name: user, creds: wcreds}, session, parsed)
	if err != nil {
		return s.failed(ctx, user, WebAuthn, a, invalidCredential(err))
	}
	// The challenge first: a replayed assertion is a replay, not a clone.
	if err := s.consumeChallenge(ctx, user, purpose, challenge); err != nil {
		if isInternal(err) {
			return err
		}
		return s.failed(ctx, user, WebAuthn, a, err)
	}
	if checked.Authenticator.CloneWarning {
		return s.cloneSuspected(ctx, user, cred.stored, a)
	}
	data := cred.data
	data.Flags = byte(checked.Flags.ProtocolValue())
	updated, err := json.Marshal(data)
	if err != nil {
		return s.internal(ctx, "use credential", err)
	}
	now := s.cfg.Now()
	switch err := s.creds.UseCredential(ctx, user, cred.stored.ID, checked.Authenticator.SignCount, updated, now); {
	case errors.Is(err, storage.ErrSignCount):
		// A concurrent assertion stored a counter at least as high.
		return s.cloneSuspected(ctx, user, cred.stored, a)
	case errors.Is(err, storage.ErrNotFound):
		return s.failed(ctx, user, WebAuthn, a, ErrNotEnrolled) // removed meanwhile
	case err != nil:
		return s.internal(ctx, "use credential", err)
	}
	if err := s.store.ResetAttempts(ctx, user, WebAuthn); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "mfa: reset attempts failed", "err", err)
	}
	s.emitCredential(ctx, EventVerified, user, "", cred.stored)
	return nil
}

// cloneSuspected refuses an assertion whose signature counter did not
// increase (S32): the authenticator may have been cloned. The audit event
// names the credential; its counter and flags are not saved.
func (s *Service) cloneSuspected(ctx context.Context, user string, c storage.Credential, a storage.Attempts) error {
	s.emitCredential(ctx, EventCloneSuspected, user, "clone_suspected", c)
	return s.failed(ctx, user, WebAuthn, a, ErrCloneSuspected)
}

// emitCredential emits an audit event about the credential c.
func (s *Service) emitCredential(ctx context.Context, typ EventType, user, reason string, c storage.Credential) {
	info := requestInfo(ctx)
	actor := info.Actor
	if actor == "" {
		actor = user
	}
	s.cfg.Events.HandleEvent(ctx, Event{Type: typ, User: user, Factor: WebAuthn, Actor: actor,
		Time: s.cfg.Now(), ClientIP: info.ClientIP, Reason: reason,
		Credential: c.Name, CredentialID: b64.EncodeToString(c.ID)})
}

package mfa

import (
	"context"
	"slices"
	"strings"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/storage"
)

// Proof is evidence that the caller holds one of the user's factors (S13).
type Proof struct {
	// Factor names what the code comes from.
	Factor Factor
	// Code is the current code of that factor; for WEBAUTHN, the
	// assertion (an AuthenticationResponseJSON).
	Code string
}

// ResetAuthenticator removes the user's authenticator enrollment (pending or
// verified) after checking proof, so the user must scan a new QR code. A
// password alone never removes MFA (S13): proof must be a current
// authenticator code, a WebAuthn assertion answering BeginWebAuthnCheck,
// or a recovery code (an email code needs a state token: see
// ResetAuthenticatorWithChallenge). Without a verified
// authenticator an authenticator proof gets ErrNotEnrolled. In-flight
// sign-ins of the user stop working (S15).
//
// It is for a caller the host has already authenticated as user (a
// session or Bearer token). Never call it with a username that arrived in
// a request under public client credentials (S23): use
// ResetAuthenticatorWithChallenge, whose state token proves the password.
func (s *Service) ResetAuthenticator(ctx context.Context, user string, proof Proof) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if err := s.checkProof(ctx, user, proof, "", purposeWebAuthnCheck); err != nil {
		return err
	}
	return s.removeAuthenticator(ctx, user, EventSelfReset)
}

// ResetAuthenticatorWithChallenge is the lost-phone reset: the state token
// of a sign-in names the user and proves the password step, and proof is a
// code of the token's factor (an email code after SwitchChallenge to
// EMAIL) or a recovery code. The token is spent as by CompleteChallenge.
func (s *Service) ResetAuthenticatorWithChallenge(ctx context.Context, token string, proof Proof) error {
	res, err := s.CompleteChallenge(ctx, token, proof)
	if err != nil {
		return err
	}
	if res.NeedsEnrollment {
		return ErrNotEnrolled
	}
	return s.removeAuthenticator(ctx, res.User, EventSelfReset)
}

// removeAuthenticator deletes the user's authenticator and closes the ways
// back (S15, S24): in-flight sign-ins always; after an admin reset, or when
// no verified factor is left, also the recovery codes and, through
// Config.EndSessions, the user's sessions.
func (s *Service) removeAuthenticator(ctx context.Context, user string, typ EventType) error {
	if _, err := s.store.DeleteEnrollment(ctx, user, Authenticator); err != nil {
		return s.internal(ctx, "reset authenticator", err)
	}
	if err := s.store.ResetAttempts(ctx, user, Authenticator); err != nil {
		return s.internal(ctx, "reset authenticator", err)
	}
	return s.closeWaysBack(ctx, user, Authenticator, typ, nil)
}

// closeWaysBack finishes the removal of the user's factor f (or, for
// WEBAUTHN, of the credential cred) and closes the ways back (S15, S24):
// in-flight sign-ins always; after an admin reset, or when no verified
// factor is left, also the recovery codes and, through Config.EndSessions,
// the user's sessions. Then it emits typ and sends the change notice.
func (s *Service) closeWaysBack(ctx context.Context, user string, f Factor, typ EventType, cred *storage.Credential) error {
	if err := s.revokeChallenges(ctx, user); err != nil {
		return err
	}
	closeAll := typ == EventAdminReset
	if !closeAll {
		held, err := s.holdsAny(ctx, user)
		if err != nil {
			return s.internal(ctx, "reset "+strings.ToLower(string(f)), err)
		}
		closeAll = !held // no verified factor left
	}
	if closeAll {
		// Sessions end first, then the recovery codes go: a set written
		// by a session that was still alive is then removed here, or
		// written after its session ended, where the HTTP layer's second
		// look at the caller takes it back (S24).
		s.emit(ctx, EventSessionsEnded, user, f, string(typ))
		if s.cfg.EndSessions != nil {
			s.cfg.EndSessions(context.WithoutCancel(ctx), user)
		}
		if err := s.store.ReplaceRecoveryCodes(ctx, user, nil); err != nil {
			return s.internal(ctx, "reset recovery codes", err)
		}
		if err := s.store.ResetAttempts(ctx, user, Recovery); err != nil {
			return s.internal(ctx, "reset recovery codes", err)
		}
	}
	if cred != nil {
		s.emitCredential(ctx, typ, user, "", *cred)
		s.notifyNamed(ctx, user, passkeyName(cred.Name), "removed")
		return nil
	}
	s.emit(ctx, typ, user, f, "")
	s.notify(ctx, user, f, "removed")
	return nil
}

var factorNames = map[Factor]string{Authenticator: "an authenticator app", Email: "email codes", WebAuthn: "a passkey"}

// notify emails the user a notice that a factor was added or removed
// (S17), saying how to report a change they did not make. The change has
// happened already, so a failure to notify is logged, not returned.
func (s *Service) notify(ctx context.Context, user string, f Factor, change string) {
	s.notifyNamed(ctx, user, factorNames[f], change)
}

// notifyNamed is notify for the factor named factorName for people, such
// as a passkey named by the user.
func (s *Service) notifyNamed(ctx context.Context, user, factorName, change string) {
	info := requestInfo(ctx)
	address := ""
	if info.Actor == "" || info.Actor == user {
		address = info.Email
	}
	if address == "" && s.cfg.Directory != nil {
		var err error
		if address, err = s.cfg.Directory.EmailOf(ctx, user); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "mfa: change notice: address lookup failed", "err", err)
			return
		}
	}
	if address == "" {
		s.cfg.Logger.WarnContext(ctx, "mfa: change notice not sent: no email address", "change", change, "factor", factorName)
		return
	}
	actor := "You"
	if info.Actor != "" && info.Actor != user {
		actor = "An administrator (" + info.Actor + ")"
	}
	tpl := mailer.Localized{Default: s.cfg.NoticeTemplate, ByLocale: s.cfg.NoticeTemplates}.For(info.Locale)
	msg, err := tpl.Render(address, mailer.NoticeData{Product: s.cfg.Issuer, User: user,
		Change: change, FactorName: factorName, Actor: actor, Time: s.cfg.Now(), ReportTo: s.cfg.ReportTo})
	if err == nil {
		err = s.mail.Send(context.WithoutCancel(ctx), msg)
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "mfa: change notice not sent", "err", err)
	}
}

// Principal is an authenticated caller and the roles the host gives it.
type Principal struct {
	Username string
	Roles    []string
}

// HasRole reports whether p has role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// AdminResetAuthenticator removes user's authenticator enrollment on behalf
// of admin, who must hold the admin role (S14). It is idempotent: a user
// with no enrollment is not an error. The audit event names the admin. It
// also removes the user's recovery codes and in-flight sign-ins and ends
// their sessions through Config.EndSessions (S24).
func (s *Service) AdminResetAuthenticator(ctx context.Context, admin Principal, user string) error {
	if !admin.HasRole(s.cfg.AdminRole) {
		return ErrForbidden
	}
	if err := checkUser(user); err != nil {
		return err
	}
	info := requestInfo(ctx)
	info.Actor, info.Locale = admin.Username, ""
	ctx = WithRequestInfo(ctx, info)
	return s.removeAuthenticator(ctx, user, EventAdminReset)
}

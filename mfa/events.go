package mfa

import (
	"context"
	"log/slog"
	"time"

	"github.com/mfakit/mfakit/internal/ctxvalue"
)

// EventType names what happened in an audit Event.
type EventType string

// The audit events (S16).
const (
	EventEnrollStarted     EventType = "enroll_started"     // a pending enrollment began (QR issued or email code sent)
	EventEnrollVerified    EventType = "enroll_verified"    // a pending enrollment was verified
	EventVerified          EventType = "verified"           // a code for a verified factor was accepted
	EventFailure           EventType = "failure"            // a code was rejected
	EventReplay            EventType = "replay"             // a code whose time step was already used was presented
	EventLockout           EventType = "lockout"            // too many failures locked the factor
	EventEmailSent         EventType = "email_sent"         // an email code was handed to the Mailer
	EventSelfReset         EventType = "self_reset"         // the user removed their own factor
	EventAdminReset        EventType = "admin_reset"        // an administrator removed a user's factor
	EventRecoveryGenerated EventType = "recovery_generated" // a new set of recovery codes replaced the old
	EventRecoveryUsed      EventType = "recovery_used"      // a recovery code was spent
	EventSessionsEnded     EventType = "sessions_ended"     // a reset closed every way back: recovery codes removed, Config.EndSessions called (S24)
	EventUserForgotten     EventType = "user_forgotten"     // every record of the user was removed (account deletion), Config.EndSessions called
	EventCredentialRemoved EventType = "credential_removed" // the user removed one of their WebAuthn credentials
	EventCloneSuspected    EventType = "clone_suspected"    // a WebAuthn signature counter did not increase: the authenticator may be cloned (S32)
)

// Event is one audit record. It never holds a secret, a code or a token.
type Event struct {
	Type   EventType
	User   string
	Factor Factor
	// Actor is who acted: the user, or the administrator for an admin reset.
	Actor string
	Time  time.Time
	// ClientIP is the client address the HTTP layer put in the context.
	ClientIP string
	// Reason says why: for a failure or lockout, the problem code the
	// HTTP layer answers its cause with ("invalid_code", "code_reused",
	// "code_expired", "not_enrolled", "invalid_credential",
	// "challenge_expired" or "clone_suspected"); for sessions_ended, the
	// type of the reset that ended them; for clone_suspected,
	// "clone_suspected"; otherwise empty.
	Reason string
	// Credential and CredentialID name the WebAuthn credential an event of
	// factor WEBAUTHN is about (added, used, removed, suspected of being
	// cloned): its name and its ID (base64url). Empty otherwise.
	Credential, CredentialID string
}

// EventHook receives audit events. HandleEvent is called synchronously on
// the request path, so it should be quick; it must be safe for concurrent
// use.
type EventHook interface {
	HandleEvent(ctx context.Context, e Event)
}

// EventHookFunc adapts a function to EventHook.
type EventHookFunc func(ctx context.Context, e Event)

// HandleEvent calls f(ctx, e).
func (f EventHookFunc) HandleEvent(ctx context.Context, e Event) { f(ctx, e) }

// SlogEvents returns an EventHook that writes each event to l at level Info
// (failures, replays and lockouts at Warn).
func SlogEvents(l *slog.Logger) EventHook {
	return EventHookFunc(func(ctx context.Context, e Event) {
		level := slog.LevelInfo
		switch e.Type {
		case EventFailure, EventReplay, EventLockout, EventCloneSuspected:
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{slog.String("user", e.User), slog.String("factor", string(e.Factor)),
			slog.String("actor", e.Actor), slog.Time("time", e.Time),
			slog.String("client_ip", e.ClientIP), slog.String("reason", e.Reason)}
		if e.CredentialID != "" {
			attrs = append(attrs, slog.String("credential", e.Credential), slog.String("credential_id", e.CredentialID))
		}
		l.LogAttrs(ctx, level, "mfa "+string(e.Type), attrs...)
	})
}

type requestInfoKey struct{}

// RequestInfo is what the HTTP layer knows about the caller, carried in the
// context into audit events.
type RequestInfo struct {
	// ClientIP is the client's address as the server saw it.
	ClientIP string
	// Actor is the authenticated caller, when it differs from the user.
	Actor string
	// Email is the caller's own email address, where change notices about
	// the caller's own account go.
	Email string
	// Locale picks translated email templates, e.g. "de-CH".
	Locale string
}

// WithRequestInfo returns ctx carrying info for audit events.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return ctxvalue.With[requestInfoKey](ctx, info)
}

func requestInfo(ctx context.Context) RequestInfo {
	info, _ := ctxvalue.Get[requestInfoKey, RequestInfo](ctx)
	return info
}

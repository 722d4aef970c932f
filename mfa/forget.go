package mfa

import "context"

// ForgetUser removes every record the kit keeps for user, for account
// deletion: enrollments (pending or verified), one-time codes and the
// in-flight sign-in's state token, failure counts and lockouts, recovery
// codes, and the email send throttle. A new account that later takes the
// same name starts with nothing; an old state token or recovery code no
// longer works. It emits EventUserForgotten and then calls
// Config.EndSessions, if set. No change notice is emailed: the account is
// gone. Forgetting a user the kit does not know is not an error.
//
// Disable the account in the host first, so no sign-in or enrollment of
// the user is in flight: a request that was already past its checks may
// still write after ForgetUser returns (see storage.Eraser). On an error
// part of the records may be gone; call it again.
//
// It takes effect for whoever calls it: the host decides who may delete
// an account (the user, or an administrator named as the actor through
// WithRequestInfo for the audit event).
func (s *Service) ForgetUser(ctx context.Context, user string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if err := s.store.ForgetUser(ctx, user, []string{emailSendKey(user)}); err != nil {
		return s.internal(ctx, "forget user", err)
	}
	s.emit(ctx, EventUserForgotten, user, "", "")
	if s.cfg.EndSessions != nil {
		s.cfg.EndSessions(context.WithoutCancel(ctx), user)
	}
	return nil
}

// emailSendKey is the send-throttle key of the user's emailed codes, as
// sendCode reserves it.
func emailSendKey(user string) string { return "email:" + user }

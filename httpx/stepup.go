package httpx

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// ErrMFARequired is returned by CheckMFA when the session has not passed
// MFA recently enough (a step-up is needed) and the user holds a factor to
// step up with.
var ErrMFARequired = errors.New("httpx: recent multi-factor authentication required")

// ErrEnrollmentRequired is returned by CheckMFA, under StepUpEnroll, when
// the session has not passed MFA recently and the user holds no verified
// factor, so no step-up is possible: the user must set one up first.
var ErrEnrollmentRequired = errors.New("httpx: a second factor must be set up first")

// StepUpPolicy says what a step-up check (RequireMFA, CheckMFA, and the
// kit's regeneration of recovery codes) does with a user who holds no
// verified factor, and so cannot pass MFA at all.
type StepUpPolicy int

const (
	// StepUpEnroll, the default, refuses such a user with 403
	// enrollment_required (ErrEnrollmentRequired): set up a second factor
	// first.
	StepUpEnroll StepUpPolicy = iota
	// StepUpAllow lets such a user pass, for hosts where a second factor
	// is optional and the password is all some users have.
	StepUpAllow
)

// mfaRequiredError carries the max age into the 401 answer.
type mfaRequiredError struct{ maxAge time.Duration }

// Error returns the text of ErrMFARequired.
func (e *mfaRequiredError) Error() string { return ErrMFARequired.Error() }

// Is matches ErrMFARequired.
func (e *mfaRequiredError) Is(target error) bool {
	return target == ErrMFARequired
}

// CheckMFA reports whether the user of r (see CheckUser) passed MFA
// within maxAge (User.MFAAt). It returns nil; ErrUnauthorized without a
// user; an error matching ErrMFARequired when the MFA is not recent and
// the user holds a verified factor; for a user who holds none,
// ErrEnrollmentRequired under StepUpEnroll (the default) and nil under
// StepUpAllow (Config.StepUpWithoutFactor); or the error of the Service
// when it could not tell. It reads the user's status from the Service only
// when the MFA is not recent.
func (a *Auth) CheckMFA(r *http.Request, maxAge time.Duration) error {
	u, err := a.CheckUser(r)
	if err != nil {
		return err
	}
	return a.stepUp(r.Context(), u, maxAge)
}

// stepUp is CheckMFA for the user u.
func (a *Auth) stepUp(ctx context.Context, u User, maxAge time.Duration) error {
	if recentMFA(u, maxAge, a.now()) {
		return nil
	}
	has, err := a.hasFactor(ctx, u.Username, "")
	switch {
	case err != nil:
		return err
	case has:
		return &mfaRequiredError{maxAge: maxAge}
	case a.withoutFactor == StepUpAllow:
		return nil
	}
	return ErrEnrollmentRequired
}

// hasFactor reports whether user holds a verified factor other than
// except among the enabled ones: the factors a sign-in can ask for, and so
// the ones a step-up can be passed with.
func (a *Auth) hasFactor(ctx context.Context, user string, except mfa.Factor) (bool, error) {
	if a.svc == nil {
		return true, nil // no Service to ask: fail closed
	}
	st, err := a.svc.Status(ctx, user)
	if err != nil {
		return false, err
	}
	for _, f := range st.Available {
		if f != except && st.Details[f].Verified {
			return true, nil
		}
	}
	return false, nil
}

func recentMFA(u User, maxAge time.Duration, now time.Time) bool {
	return !u.MFAAt.IsZero() && !u.MFAAt.After(now.Add(time.Minute)) && now.Sub(u.MFAAt) <= maxAge
}

// RequireMFA is step-up middleware for host routes that need a recent
// MFA: the user of the request (see CheckUser) must have passed MFA within
// maxAge (User.MFAAt). Otherwise it answers 401 mfa_required, with an RFC
// 9470 WWW-Authenticate challenge when the Authenticator is Bearer's; a
// user who holds no verified factor gets 403 enrollment_required under
// StepUpEnroll, the default, and passes under StepUpAllow
// (Config.StepUpWithoutFactor). It puts the user in the context.
func (a *Auth) RequireMFA(maxAge time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, err := a.CheckUser(r)
			if err != nil {
				a.refuse(w, r, err, a.userSchemes...)
				return
			}
			r = r.WithContext(WithUser(r.Context(), u))
			if err := a.stepUp(r.Context(), u, maxAge); err != nil {
				a.refuse(w, r, err, a.userSchemes...)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// stepUpForSecondFactor asks for a recent MFA before a user who already
// holds a verified factor adds another one (S17's step-up rule): a stolen
// password-only session must not be able to add the thief's factor. The
// first factor never needs one, whatever Config.StepUpWithoutFactor says:
// enrolling it is how a user without a factor gets one.
func (h *Handlers) stepUpForSecondFactor(r *http.Request, u User, adding mfa.Factor) error {
	if recentMFA(u, h.cfg.StepUpMaxAge, h.now()) {
		return nil
	}
	has, err := h.auth.hasFactor(r.Context(), u.Username, adding)
	if err != nil {
		return err
	}
	if has {
		return &mfaRequiredError{maxAge: h.cfg.StepUpMaxAge}
	}
	return nil
}

package httpx

import (
	"errors"
	"net/http"
	"time"
)

// ErrMFARequired is returned by CheckMFA when the session has not passed
// MFA recently enough (a step-up is needed).
var ErrMFARequired = errors.New("httpx: recent multi-factor authentication required")

// mfaRequiredError carries the max age into the 401 answer.
type mfaRequiredError struct{ maxAge time.Duration }

// Error returns the text of ErrMFARequired.
func (e *mfaRequiredError) Error() string { return ErrMFARequired.Error() }

// Is matches ErrMFARequired.
func (e *mfaRequiredError) Is(target error) bool {
	return target == ErrMFARequired
}

// CheckMFA reports whether the authenticated user of r (see UserFrom, or
// the Bearer token when no middleware ran) passed MFA within maxAge. It
// returns nil, ErrUnauthorized, or an error matching ErrMFARequired.
func (a *Auth) CheckMFA(r *http.Request, maxAge time.Duration) error {
	u, ok := UserFrom(r.Context())
	if !ok {
		var err error
		if u, err = a.CheckUser(r); err != nil {
			return err
		}
	}
	if !recentMFA(u, maxAge, a.now()) {
		return &mfaRequiredError{maxAge: maxAge}
	}
	return nil
}

func recentMFA(u User, maxAge time.Duration, now time.Time) bool {
	return !u.MFAAt.IsZero() && !u.MFAAt.After(now.Add(time.Minute)) && now.Sub(u.MFAAt) <= maxAge
}

// RequireMFA is step-up middleware for host routes that need a recent
// MFA: the caller's Bearer token must belong to a session that passed MFA
// within maxAge (User.MFAAt). Otherwise it answers 401 with code
// mfa_required and an RFC 9470 WWW-Authenticate challenge.
func (a *Auth) RequireMFA(maxAge time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok := UserFrom(r.Context())
			if !ok {
				var err error
				if u, err = a.CheckUser(r); err != nil {
					a.refuse(w, r, err, schemeBearer)
					return
				}
				r = r.WithContext(WithUser(r.Context(), u))
			}
			if err := a.CheckMFA(r, maxAge); err != nil {
				a.refuse(w, r, err, schemeBearer)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

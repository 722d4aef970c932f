package httpx

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// Problem is an RFC 9457 problem detail, the body of every error answer.
type Problem struct {
	// Type is a URI naming the problem kind: "urn:mfakit:problem:" + Code.
	Type string `json:"type"`
	// Title is a short, fixed summary of the kind.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence; it never echoes an internal error.
	Detail string `json:"detail"`
	// Code is the stable machine-readable name docs/errors.md lists.
	Code string `json:"code"`
	// InvalidParams names each rejected field of a bad request.
	InvalidParams []InvalidParam `json:"invalid_params,omitempty"`

	retryAfter time.Duration
}

// InvalidParam names one field of a request that failed validation.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Error returns the problem's code and detail.
func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// The stable problem codes.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidCode          = "invalid_code"
	CodeCodeExpired          = "code_expired"
	CodeCodeReused           = "code_reused"
	CodeNotEnrolled          = "not_enrolled"
	CodeEnrollmentExpired    = "enrollment_expired"
	CodeAlreadyEnrolled      = "already_enrolled"
	CodeFactorDisabled       = "factor_disabled"
	CodeNoEmail              = "no_email"
	CodeEmailOnly            = "email_only"
	CodeLocked               = "locked"
	CodeRateLimited          = "rate_limited"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeNotAcceptable        = "not_acceptable"
	CodeBodyTooLarge         = "body_too_large"
	CodeInternal             = "internal_error"
	CodeMFARequired          = "mfa_required"
	CodeInvalidToken         = "invalid_token"
	CodeTokenExpired         = "token_expired"
	CodeMailUnavailable      = "mail_unavailable"
)

var titles = map[string]string{
	CodeInvalidRequest:       "Invalid request",
	CodeInvalidCode:          "Invalid code",
	CodeCodeExpired:          "Code expired",
	CodeCodeReused:           "Code already used",
	CodeNotEnrolled:          "Factor not enrolled",
	CodeEnrollmentExpired:    "Enrollment expired",
	CodeAlreadyEnrolled:      "Factor already enrolled",
	CodeFactorDisabled:       "Factor not enabled",
	CodeNoEmail:              "No email address",
	CodeEmailOnly:            "Email cannot be the only factor",
	CodeLocked:               "Too many failed attempts",
	CodeRateLimited:          "Too many requests",
	CodeUnauthorized:         "Unauthorized",
	CodeForbidden:            "Forbidden",
	CodeNotFound:             "Not found",
	CodeMethodNotAllowed:     "Method not allowed",
	CodeUnsupportedMediaType: "Unsupported media type",
	CodeNotAcceptable:        "Not acceptable",
	CodeBodyTooLarge:         "Request body too large",
	CodeInternal:             "Internal error",
	CodeMFARequired:          "Recent multi-factor authentication required",
	CodeInvalidToken:         "Invalid state token",
	CodeTokenExpired:         "State token expired",
	CodeMailUnavailable:      "Email could not be delivered",
}

// NewProblem returns the problem of the given status and code.
func NewProblem(status int, code, detail string) *Problem {
	return &Problem{Type: "urn:mfakit:problem:" + code, Title: titles[code], Status: status,
		Detail: detail, Code: code}
}

// ProblemFor maps an error from mfa or this package to the problem the
// client sees. Errors it does not know become a 500 that says nothing of
// their text (rule: fail closed and quietly).
func ProblemFor(err error) *Problem {
	var p *Problem
	var locked *mfa.LockedError
	var limited *mfa.RateLimitedError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &locked):
		p = NewProblem(http.StatusTooManyRequests, CodeLocked,
			"too many failed attempts; this factor is locked for a while")
		p.retryAfter = time.Until(locked.Until)
		return p
	case errors.As(err, &limited):
		p = NewProblem(http.StatusTooManyRequests, CodeRateLimited, "a code was sent recently; wait before asking again")
		p.retryAfter = limited.RetryAfter
		return p
	case errors.Is(err, ErrMFARequired):
		return NewProblem(http.StatusUnauthorized, CodeMFARequired,
			"sign in again with your second factor to do this")
	case errors.Is(err, mfa.ErrInvalidToken):
		return NewProblem(http.StatusBadRequest, CodeInvalidToken, "the state token is not valid; sign in again")
	case errors.Is(err, mfa.ErrTokenExpired):
		return NewProblem(http.StatusBadRequest, CodeTokenExpired, "the state token has expired; sign in again")
	case errors.Is(err, mfa.ErrMailUnavailable):
		p = NewProblem(http.StatusServiceUnavailable, CodeMailUnavailable,
			"the email with the code could not be sent; try again shortly")
		p.retryAfter = 30 * time.Second
		return p
	case errors.Is(err, ErrUnauthorized):
		return NewProblem(http.StatusUnauthorized, CodeUnauthorized, "valid credentials are required")
	case errors.Is(err, mfa.ErrForbidden):
		return NewProblem(http.StatusForbidden, CodeForbidden, "the caller lacks the role this operation needs")
	case errors.Is(err, mfa.ErrInvalidCode):
		return NewProblem(http.StatusBadRequest, CodeInvalidCode, "the code is not valid")
	case errors.Is(err, mfa.ErrCodeExpired):
		return NewProblem(http.StatusBadRequest, CodeCodeExpired, "the code has expired; request a new one")
	case errors.Is(err, mfa.ErrCodeReused):
		return NewProblem(http.StatusBadRequest, CodeCodeReused, "the code was already used; wait for the next one")
	case errors.Is(err, mfa.ErrNotEnrolled):
		return NewProblem(http.StatusConflict, CodeNotEnrolled, "the factor is not enrolled in the state this needs")
	case errors.Is(err, mfa.ErrEnrollmentExpired):
		return NewProblem(http.StatusConflict, CodeEnrollmentExpired, "the pending enrollment expired; start again")
	case errors.Is(err, mfa.ErrAlreadyEnrolled):
		return NewProblem(http.StatusConflict, CodeAlreadyEnrolled, "the factor is already enrolled; reset it first")
	case errors.Is(err, mfa.ErrFactorDisabled):
		return NewProblem(http.StatusBadRequest, CodeFactorDisabled, "this factor is not enabled")
	case errors.Is(err, mfa.ErrNoEmail):
		return NewProblem(http.StatusConflict, CodeNoEmail, "no email address is known for this user")
	case errors.Is(err, mfa.ErrEmailOnly):
		return NewProblem(http.StatusConflict, CodeEmailOnly, "enroll an authenticator before email")
	case errors.Is(err, mfa.ErrInvalidUser):
		return invalidParam("username", "must be 1 to 320 bytes of UTF-8")
	case errors.Is(err, mfa.ErrUnsupportedProof):
		return invalidParam("mfatype", "this factor cannot prove this operation")
	}
	return NewProblem(http.StatusInternalServerError, CodeInternal, "the server could not complete the request")
}

func invalidParam(name, reason string) *Problem {
	p := NewProblem(http.StatusBadRequest, CodeInvalidRequest, name+": "+reason)
	p.InvalidParams = []InvalidParam{{Name: name, Reason: reason}}
	return p
}

// WriteProblem writes p as application/problem+json, with Retry-After
// (whole seconds, at least 1) on a 429.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.Status == http.StatusTooManyRequests || p.retryAfter > 0 {
		secs := max(1, int64(math.Ceil(p.retryAfter.Seconds())))
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// ErrorHandler writes the answer to a failed request. The default,
// DefaultErrorHandler, writes ProblemFor(err).
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// DefaultErrorHandler writes ProblemFor(err) as problem+json.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	WriteProblem(w, ProblemFor(err))
}

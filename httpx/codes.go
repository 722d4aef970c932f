package httpx

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

// The stable problem codes. problemKinds gives each its status and title.
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
	CodeEnrollmentRequired   = "enrollment_required"
	CodeCrossOrigin          = "cross_origin"
	CodeInvalidCredential    = "invalid_credential"
	CodeChallengeExpired     = "challenge_expired"
	CodeCloneSuspected       = "clone_suspected"
	CodeCredentialExists     = "credential_exists"
	CodeCredentialLimit      = "credential_limit"
)

// problemKind is one problem code: the status and title of every answer
// with it, and the errors ProblemFor answers with it.
type problemKind struct {
	code   string
	status int
	title  string
	// cases are the errors answered with this code, matched with
	// errors.Is; none for codes only this package raises (with NewProblem).
	cases []problemCase
	// retryAfter, when set, is how long the client should wait after err.
	retryAfter func(err error) time.Duration
}

// problemCase is one error answered with its kind's code.
type problemCase struct {
	err    error
	detail string
	// param, when set, is the request field the answer names in
	// invalid_params; detail is then the reason.
	param string
	// body is the answer's problem+json body, encoded once (see init in
	// problem.go).
	body string
}

// problemKinds is the one vocabulary of error answers: every problem code
// with its status, title and the domain errors it answers. ProblemFor
// tries the cases in this order, so an error that matches two (a mail
// failure whose cause matches another kind, say) gets the first. mfa's
// Event.Reason strings are codes of this table (a test checks it), and
// docs/errors.md and openapi.yaml list exactly these codes (tests check
// them too).
var problemKinds = []problemKind{
	{code: CodeLocked, status: http.StatusTooManyRequests, title: "Too many failed attempts",
		cases:      []problemCase{{err: mfa.ErrLocked, detail: "too many failed attempts; this factor is locked for a while"}},
		retryAfter: lockedRetryAfter},
	{code: CodeRateLimited, status: http.StatusTooManyRequests, title: "Too many requests",
		cases:      []problemCase{{err: mfa.ErrRateLimited, detail: "a code was sent recently; wait before asking again"}},
		retryAfter: rateLimitedRetryAfter},
	{code: CodeMFARequired, status: http.StatusUnauthorized, title: "Recent multi-factor authentication required",
		cases: []problemCase{{err: ErrMFARequired, detail: "sign in again with your second factor to do this"}}},
	{code: CodeInvalidToken, status: http.StatusBadRequest, title: "Invalid state token",
		cases: []problemCase{{err: mfa.ErrInvalidToken, detail: "the state token is not valid; sign in again"}}},
	{code: CodeTokenExpired, status: http.StatusBadRequest, title: "State token expired",
		cases: []problemCase{{err: mfa.ErrTokenExpired, detail: "the state token has expired; sign in again"}}},
	{code: CodeMailUnavailable, status: http.StatusServiceUnavailable, title: "Email could not be delivered",
		cases:      []problemCase{{err: mfa.ErrMailUnavailable, detail: "the email with the code could not be sent; try again shortly"}},
		retryAfter: func(error) time.Duration { return 30 * time.Second }},
	{code: CodeUnauthorized, status: http.StatusUnauthorized, title: "Unauthorized",
		cases: []problemCase{{err: ErrUnauthorized, detail: "valid credentials are required"}}},
	{code: CodeEnrollmentRequired, status: http.StatusForbidden, title: "Second factor required",
		cases: []problemCase{{err: ErrEnrollmentRequired, detail: "set up a second factor first"}}},
	{code: CodeCrossOrigin, status: http.StatusForbidden, title: "Cross-origin request refused",
		cases: []problemCase{{err: ErrCrossOrigin, detail: "this request came from another origin; send it from the site itself"}}},
	{code: CodeForbidden, status: http.StatusForbidden, title: "Forbidden",
		cases: []problemCase{{err: mfa.ErrForbidden, detail: "the caller lacks the role this operation needs"}}},
	{code: CodeInvalidCode, status: http.StatusBadRequest, title: "Invalid code",
		cases: []problemCase{{err: mfa.ErrInvalidCode, detail: "the code is not valid"}}},
	{code: CodeCodeExpired, status: http.StatusBadRequest, title: "Code expired",
		cases: []problemCase{{err: mfa.ErrCodeExpired, detail: "the code has expired; request a new one"}}},
	{code: CodeCodeReused, status: http.StatusBadRequest, title: "Code already used",
		cases: []problemCase{{err: mfa.ErrCodeReused, detail: "the code was already used; wait for the next one"}}},
	{code: CodeCloneSuspected, status: http.StatusBadRequest, title: "Possible cloned authenticator",
		cases: []problemCase{{err: mfa.ErrCloneSuspected, detail: "the authenticator's signature counter went back; this credential may have been copied"}}},
	{code: CodeChallengeExpired, status: http.StatusBadRequest, title: "Challenge expired",
		cases: []problemCase{{err: mfa.ErrChallengeExpired, detail: "the WebAuthn challenge has expired; ask for new options"}}},
	{code: CodeInvalidCredential, status: http.StatusBadRequest, title: "Invalid credential",
		cases: []problemCase{{err: mfa.ErrInvalidCredential, detail: "the passkey's answer could not be verified"}}},
	{code: CodeCredentialExists, status: http.StatusConflict, title: "Credential already registered",
		cases: []problemCase{{err: mfa.ErrCredentialExists, detail: "this passkey or security key is registered already"}}},
	{code: CodeCredentialLimit, status: http.StatusConflict, title: "Too many credentials",
		cases: []problemCase{{err: mfa.ErrCredentialLimit, detail: "remove a passkey before adding another"}}},
	{code: CodeNotEnrolled, status: http.StatusConflict, title: "Factor not enrolled",
		cases: []problemCase{{err: mfa.ErrNotEnrolled, detail: "the factor is not enrolled in the state this needs"}}},
	{code: CodeEnrollmentExpired, status: http.StatusConflict, title: "Enrollment expired",
		cases: []problemCase{{err: mfa.ErrEnrollmentExpired, detail: "the pending enrollment expired; start again"}}},
	{code: CodeAlreadyEnrolled, status: http.StatusConflict, title: "Factor already enrolled",
		cases: []problemCase{{err: mfa.ErrAlreadyEnrolled, detail: "the factor is already enrolled; reset it first"}}},
	{code: CodeFactorDisabled, status: http.StatusBadRequest, title: "Factor not enabled",
		cases: []problemCase{{err: mfa.ErrFactorDisabled, detail: "this factor is not enabled"}}},
	{code: CodeNoEmail, status: http.StatusConflict, title: "No email address",
		cases: []problemCase{{err: mfa.ErrNoEmail, detail: "no email address is known for this user"}}},
	{code: CodeEmailOnly, status: http.StatusConflict, title: "Email cannot be the only factor",
		cases: []problemCase{{err: mfa.ErrEmailOnly, detail: "enroll an authenticator before email"}}},
	{code: CodeInvalidRequest, status: http.StatusBadRequest, title: "Invalid request",
		cases: []problemCase{
			{err: mfa.ErrInvalidUser, param: "username", detail: "must be 1 to 320 bytes of UTF-8"},
			{err: mfa.ErrUnsupportedProof, param: "mfatype", detail: "this factor cannot prove this operation"},
			{err: mfa.ErrInvalidName, param: "name", detail: "must be at most 64 bytes of text without control characters"},
		}},
	{code: CodeInternal, status: http.StatusInternalServerError, title: "Internal error",
		cases: []problemCase{{err: mfa.ErrInternal, detail: internalDetail}}},
	{code: CodeNotFound, status: http.StatusNotFound, title: "Not found",
		cases: []problemCase{{err: mfa.ErrCredentialNotFound, detail: "the user has no credential with this id"}}},
	{code: CodeMethodNotAllowed, status: http.StatusMethodNotAllowed, title: "Method not allowed"},
	{code: CodeUnsupportedMediaType, status: http.StatusUnsupportedMediaType, title: "Unsupported media type"},
	{code: CodeNotAcceptable, status: http.StatusNotAcceptable, title: "Not acceptable"},
	{code: CodeBodyTooLarge, status: http.StatusRequestEntityTooLarge, title: "Request body too large"},
}

// internalDetail is the whole detail of a 500: it never says more.
const internalDetail = "the server could not complete the request"

// lockedRetryAfter is the lockout's time left, which the Service measured
// by its clock when it made the error: ProblemFor reads no clock.
func lockedRetryAfter(err error) time.Duration {
	var locked *mfa.LockedError
	if errors.As(err, &locked) {
		return locked.RetryAfter
	}
	return 0
}

func rateLimitedRetryAfter(err error) time.Duration {
	var limited *mfa.RateLimitedError
	if errors.As(err, &limited) {
		return limited.RetryAfter
	}
	return 0
}

// kindOf returns the kind of code.
func kindOf(code string) (problemKind, bool) {
	i := slices.IndexFunc(problemKinds, func(k problemKind) bool { return k.code == code })
	if i < 0 {
		return problemKind{}, false
	}
	return problemKinds[i], true
}

// ProblemCode describes one stable problem code of the error answers.
type ProblemCode struct {
	// Code is the value of Problem.Code.
	Code string
	// Status is the HTTP status of every answer with Code.
	Status int
	// Title is the Problem.Title of every answer with Code.
	Title string
}

// ProblemCodes lists every problem code the kit answers with, by status,
// for hosts that document or generate clients for them (docs/errors.md
// explains each).
func ProblemCodes() []ProblemCode {
	out := make([]ProblemCode, len(problemKinds))
	for i, k := range problemKinds {
		out[i] = ProblemCode{Code: k.code, Status: k.status, Title: k.title}
	}
	slices.SortStableFunc(out, func(a, b ProblemCode) int { return a.Status - b.Status })
	return out
}

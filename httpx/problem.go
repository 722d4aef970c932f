package httpx

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"
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

// NewProblem returns the problem of the given status and code; its title
// is the code's (see ProblemCodes).
func NewProblem(status int, code, detail string) *Problem {
	k, _ := kindOf(code)
	return &Problem{Type: "urn:mfakit:problem:" + code, Title: k.title, Status: status,
		Detail: detail, Code: code}
}

// ProblemFor maps an error from mfa or this package to the problem the
// client sees, by the table of problem codes (ProblemCodes). Errors it
// does not know become a 500 that says nothing of their text (rule: fail
// closed and quietly).
func ProblemFor(err error) *Problem {
	if p, ok := errors.AsType[*Problem](err); ok {
		return p
	}
	for _, k := range problemKinds {
		for _, c := range k.cases {
			if !errors.Is(err, c.err) {
				continue
			}
			var p *Problem
			if c.param != "" {
				p = invalidParam(c.param, c.detail)
			} else {
				p = NewProblem(k.status, k.code, c.detail)
			}
			if k.retryAfter != nil {
				p.retryAfter = k.retryAfter(err)
			}
			return p
		}
	}
	return NewProblem(http.StatusInternalServerError, CodeInternal, internalDetail)
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

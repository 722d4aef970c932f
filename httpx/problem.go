package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
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
	k, c := caseOf(err)
	if c == nil {
		return NewProblem(http.StatusInternalServerError, CodeInternal, internalDetail)
	}
	p := c.problem(k)
	if k.retryAfter != nil {
		p.retryAfter = k.retryAfter(err)
	}
	return p
}

// caseOf returns the entry of the table of problem codes (problemKinds)
// that answers err, tried in order, or nil, nil when none does.
func caseOf(err error) (*problemKind, *problemCase) {
	for i := range problemKinds {
		k := &problemKinds[i]
		for j := range k.cases {
			if errors.Is(err, k.cases[j].err) {
				return k, &k.cases[j]
			}
		}
	}
	return nil, nil
}

// problem returns the problem of c, a case of k, without its Retry-After.
func (c *problemCase) problem(k *problemKind) *Problem {
	if c.param != "" {
		return invalidParam(c.param, c.detail)
	}
	return NewProblem(k.status, k.code, c.detail)
}

// answer is how the kit answers an error: with the *Problem it holds,
// else with its case of the table of problem codes, else (an error the
// kit does not know) with a quiet 500. answerFor finds it once per failed
// request, for both the log decision and the answer.
type answer struct {
	p *Problem
	k *problemKind
	c *problemCase
}

func answerFor(err error) answer {
	if p, ok := errors.AsType[*Problem](err); ok {
		return answer{p: p}
	}
	k, c := caseOf(err)
	return answer{k: k, c: c}
}

// status is ProblemFor(err).Status.
func (a answer) status() int {
	switch {
	case a.p != nil:
		return a.p.Status
	case a.k != nil:
		return a.k.status
	}
	return http.StatusInternalServerError
}

// write writes the answer to err as WriteProblem(w, ProblemFor(err))
// does; for a case of the table, its body encoded once (problemCase.body).
func (a answer) write(w http.ResponseWriter, err error) {
	if a.c == nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	var retryAfter time.Duration
	if a.k.retryAfter != nil {
		retryAfter = a.k.retryAfter(err)
	}
	writeProblemHeader(w, a.k.status, retryAfter)
	io.WriteString(w, a.c.body)
}

// init encodes the problem of every case of the table once, as
// WriteProblem encodes it: an answer to a domain error is constant but
// for its Retry-After header, and DefaultErrorHandler writes these bytes.
func init() {
	for i := range problemKinds {
		k := &problemKinds[i]
		for j := range k.cases {
			c := &k.cases[j]
			var b strings.Builder
			if err := json.NewEncoder(&b).Encode(c.problem(k)); err != nil {
				panic(err)
			}
			c.body = b.String()
		}
	}
}

func invalidParam(name, reason string) *Problem {
	p := NewProblem(http.StatusBadRequest, CodeInvalidRequest, name+": "+reason)
	p.InvalidParams = []InvalidParam{{Name: name, Reason: reason}}
	return p
}

// WriteProblem writes p as application/problem+json, with Retry-After
// (whole seconds, at least 1) on a 429.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	writeProblemHeader(w, p.Status, p.retryAfter)
	json.NewEncoder(w).Encode(p)
}

// writeProblemHeader writes the headers and status of a problem answer.
func writeProblemHeader(w http.ResponseWriter, status int, retryAfter time.Duration) {
	h := w.Header()
	setAnswerHeaders(h, "application/problem+json", true)
	if status == http.StatusTooManyRequests || retryAfter > 0 {
		secs := max(1, int64(math.Ceil(retryAfter.Seconds())))
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(status)
}

// ErrorHandler writes the answer to a failed request. The default,
// DefaultErrorHandler, writes ProblemFor(err).
type ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

// DefaultErrorHandler writes ProblemFor(err) as problem+json.
func DefaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	answerFor(err).write(w, err)
}

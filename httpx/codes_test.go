package httpx_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mfa"
)

// TestProblemCodesDocumented: docs/errors.md lists exactly the codes of
// the table, each with its status.
func TestProblemCodesDocumented(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) < 4 {
			continue
		}
		status, err := strconv.Atoi(strings.TrimSpace(cells[2]))
		if err != nil {
			continue // the header and its rule
		}
		documented[strings.TrimSpace(cells[1])] = status
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range httpx.ProblemCodes() {
		if got, ok := documented[c.Code]; !ok || got != c.Status {
			t.Errorf("docs/errors.md lists %s with status %d (listed: %v), the table says %d", c.Code, got, ok, c.Status)
		}
		delete(documented, c.Code)
	}
	for code := range documented {
		t.Errorf("docs/errors.md lists %s, which the table does not have", code)
	}
}

// TestProblemCodesInOpenAPI: the OpenAPI document's Problem.code enum is
// exactly the table's codes.
func TestProblemCodesInOpenAPI(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(httpx.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var inDoc []string
	for _, v := range doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum {
		inDoc = append(inDoc, v.(string))
	}
	var inTable []string
	for _, c := range httpx.ProblemCodes() {
		inTable = append(inTable, c.Code)
	}
	slices.Sort(inDoc)
	slices.Sort(inTable)
	if !slices.Equal(inDoc, inTable) {
		t.Fatalf("openapi.yaml's codes %v, the table's %v", inDoc, inTable)
	}
}

// TestProblemFor pins the answer to every error of mfa and httpx: code,
// status and title (from the table), also when wrapped; and an error it
// does not know is a quiet 500.
func TestProblemFor(t *testing.T) {
	t.Parallel()
	table := map[string]httpx.ProblemCode{}
	for _, c := range httpx.ProblemCodes() {
		if _, dup := table[c.Code]; dup || c.Title == "" {
			t.Fatalf("code %s is listed twice or without a title", c.Code)
		}
		table[c.Code] = c
	}
	for _, c := range []struct {
		err    error
		code   string
		status int
	}{
		{mfa.ErrInvalidCode, "invalid_code", 400},
		{mfa.ErrCodeExpired, "code_expired", 400},
		{mfa.ErrCodeReused, "code_reused", 400},
		{mfa.ErrFactorDisabled, "factor_disabled", 400},
		{mfa.ErrInvalidToken, "invalid_token", 400},
		{mfa.ErrTokenExpired, "token_expired", 400},
		{mfa.ErrInvalidUser, "invalid_request", 400},
		{mfa.ErrUnsupportedProof, "invalid_request", 400},
		{httpx.ErrUnauthorized, "unauthorized", 401},
		{httpx.ErrMFARequired, "mfa_required", 401},
		{mfa.ErrForbidden, "forbidden", 403},
		{mfa.ErrNotEnrolled, "not_enrolled", 409},
		{mfa.ErrEnrollmentExpired, "enrollment_expired", 409},
		{mfa.ErrAlreadyEnrolled, "already_enrolled", 409},
		{mfa.ErrNoEmail, "no_email", 409},
		{mfa.ErrEmailOnly, "email_only", 409},
		{&mfa.LockedError{Until: time.Now().Add(time.Minute)}, "locked", 429},
		{&mfa.RateLimitedError{RetryAfter: time.Minute}, "rate_limited", 429},
		{mfa.ErrInternal, "internal_error", 500},
		{errors.New("db: connection refused"), "internal_error", 500},
		{mfa.ErrMailUnavailable, "mail_unavailable", 503},
	} {
		for _, err := range []error{c.err, fmt.Errorf("wrapped: %w", c.err)} {
			p := httpx.ProblemFor(err)
			if p.Code != c.code || p.Status != c.status || p.Title != table[c.code].Title || table[c.code].Status != c.status ||
				p.Type != "urn:mfakit:problem:"+c.code || p.Detail == "" || strings.Contains(p.Detail, "db:") {
				t.Errorf("%v: %+v, want code %s, status %d", err, p, c.code, c.status)
			}
		}
	}
}

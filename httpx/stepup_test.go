package httpx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// countingStore counts the reads of a user's enrollments (a Status read).
type countingStore struct {
	storage.Store
	reads atomic.Int64
}

func (s *countingStore) Enrollments(ctx context.Context, user string) ([]storage.Enrollment, error) {
	s.reads.Add(1)
	return s.Store.Enrollments(ctx, user)
}

// TestStepUpWithoutFactor: a user with no verified factor cannot step up;
// under StepUpEnroll (the default) a step-up check tells them to set one
// up (403 enrollment_required), under StepUpAllow they pass. A user with a
// factor but no recent MFA gets 401 mfa_required under both. The status
// is read only when the MFA is not recent.
func TestStepUpWithoutFactor(t *testing.T) {
	t.Parallel()
	store := &countingStore{Store: memstore.New()}
	e := newEnv(t, store)
	e.enrollQR("alice-token")
	const recovery = "/oauth/users/mfa/recoveryCodes"
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("payment page")) })
	for _, c := range []struct {
		policy httpx.StepUpPolicy
		// status of RequireMFA for bob (no factor), and of his POST recoveryCodes
		bob, bobRecovery    int
		bobCode, bobRecCode string
		bobErr              error
	}{
		{httpx.StepUpEnroll, 403, 403, "enrollment_required", "enrollment_required", httpx.ErrEnrollmentRequired},
		{httpx.StepUpAllow, 200, 409, "", "not_enrolled", nil},
	} {
		h := e.handlers(httpx.Config{StepUpWithoutFactor: c.policy})
		e.srv = httptest.NewServer(h.Handler())
		t.Cleanup(e.srv.Close)
		protected := h.Auth().RequireMFA(5 * time.Minute)(page)
		call := func(token string) response {
			req := httptest.NewRequest("GET", "/pay", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			protected.ServeHTTP(rec, req)
			if err := h.Auth().CheckMFA(req, 5*time.Minute); (err == nil) != (rec.Code == 200) {
				t.Errorf("policy %d, %s: CheckMFA %v, RequireMFA %d", c.policy, token, err, rec.Code)
			}
			return response{rec.Code, rec.Header(), rec.Body.Bytes()}
		}

		r := call("bob-token")
		expect(t, r, c.bob, c.bobCode)
		if r.header.Get("WWW-Authenticate") != "" {
			t.Errorf("policy %d: WWW-Authenticate %q on a user without a factor", c.policy, r.header.Get("WWW-Authenticate"))
		}
		req := httptest.NewRequest("GET", "/pay", nil)
		req.Header.Set("Authorization", "Bearer bob-token")
		if err := h.Auth().CheckMFA(req, time.Minute); !errors.Is(err, c.bobErr) {
			t.Errorf("policy %d: CheckMFA for bob = %v, want %v", c.policy, err, c.bobErr)
		}
		expect(t, e.do(request{method: "POST", path: recovery, token: "bob-token"}), c.bobRecovery, c.bobRecCode)

		// A factor and no recent MFA: a step-up, whatever the policy.
		expect(t, call("alice-stale"), 401, "mfa_required")
		expect(t, e.do(request{method: "POST", path: recovery, token: "alice-stale"}), 401, "mfa_required")

		// A recent MFA passes without a status read.
		before := store.reads.Load()
		expect(t, call("alice-mfa"), 200, "")
		if n := store.reads.Load() - before; n != 0 {
			t.Errorf("policy %d: %d status reads for a recent MFA", c.policy, n)
		}
		before = store.reads.Load()
		call("alice-stale")
		if n := store.reads.Load() - before; n != 2 { // RequireMFA and CheckMFA, one each
			t.Errorf("policy %d: %d status reads for two step-up checks", c.policy, n)
		}
	}
}

// TestFirstEnrollmentNeedsNoStepUp: under either policy a user with no
// factor enrolls the first one (authenticator or email) on a
// password-only session; only the second factor needs a step-up.
func TestFirstEnrollmentNeedsNoStepUp(t *testing.T) {
	t.Parallel()
	for _, policy := range []httpx.StepUpPolicy{httpx.StepUpEnroll, httpx.StepUpAllow} {
		e := newEnv(t, nil)
		e.srv = httptest.NewServer(e.handlers(httpx.Config{StepUpWithoutFactor: policy}).Handler())
		t.Cleanup(e.srv.Close)

		// The authenticator first.
		e.enrollQR("alice-token")
		expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-token"}), 401, "mfa_required")

		// Email first, then the authenticator.
		expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "bob-token"}), 200, "")
		expect(t, e.do(request{method: "PUT", path: qrPath, token: "bob-token"}), 200, "") // email still pending: not a factor yet
		expect(t, e.do(request{method: "PUT", path: verifyEmail, token: "bob-token", body: verifyBody("EMAIL", e.mail.LastCode("bob@example.com"))}), 200, "")
		expect(t, e.do(request{method: "PUT", path: qrPath, token: "bob-token"}), 401, "mfa_required")
	}
}

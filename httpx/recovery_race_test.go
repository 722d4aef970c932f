package httpx_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// resetDuringReplace runs an admin reset of user right before the set a
// generation request writes is stored.
type resetDuringReplace struct {
	storage.Store
	during func()
}

func (s *resetDuringReplace) ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	if len(hashes) > 0 && s.during != nil {
		f := s.during
		s.during = nil
		f()
	}
	return s.Store.ReplaceRecoveryCodes(ctx, user, hashes)
}

// S24: a session with a recent MFA asks for new recovery codes while an
// administrator resets the user (ending the session). The set that
// request writes does not survive the reset.
func TestRecoveryCodesDuringAdminReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &resetDuringReplace{Store: memstore.New()}
	var ended atomic.Bool
	now := time.Now()
	mail := &mailertest.Recorder{}
	svc, err := mfa.New(store, mail, mfa.NewRandomKeyring(), mfa.Config{
		Logger:      slog.New(slog.DiscardHandler),
		EndSessions: func(context.Context, string) { ended.Store(true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// The stolen session: valid until EndSessions runs, with a fresh MFA.
	authn := httpx.AuthenticatorFunc(func(r *http.Request) (httpx.User, error) {
		if ended.Load() || r.Header.Get("Authorization") != "Bearer stolen" {
			return httpx.User{}, httpx.ErrUnauthorized
		}
		return httpx.User{Username: "ron", Email: "ron@example.com", MFAAt: now}, nil
	})
	srv := httptest.NewServer(httpx.New(svc, authn, httpx.Config{Logger: slog.New(slog.DiscardHandler)}).Handler())
	defer srv.Close()
	key, _ := svc.BeginAuthenticator(ctx, "ron")
	secret, p, _ := mfa.ParseKeyURI(key.URI)
	if err := svc.VerifyAuthenticator(ctx, "ron", p.Code(secret, p.Step(time.Now()))); err != nil {
		t.Fatal(err)
	}
	// Email stays verified after the reset: only the second look at the
	// caller can tell that the request's session has ended.
	if err := svc.BeginEmail(ctx, "ron", "ron@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := svc.VerifyEmail(ctx, "ron", mail.LastCode("ron@example.com")); err != nil {
		t.Fatal(err)
	}
	admin := mfa.Principal{Username: "boss", Roles: []string{"ROLE_ADMIN_CUSTOMER"}}
	store.during = func() {
		if err := svc.AdminResetAuthenticator(ctx, admin, "ron"); err != nil {
			t.Error(err)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/oauth/users/mfa/recoveryCodes", nil)
	req.Header.Set("Authorization", "Bearer stolen")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	body.Write(buf[:n])
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("the ended session got its codes: %s", body.String())
	}
	if left, _ := svc.RecoveryCodesLeft(ctx, "ron"); left != 0 {
		t.Fatalf("S24: %d recovery codes survived the admin reset", left)
	}
}

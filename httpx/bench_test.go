package httpx_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// benchAuthz resolves "t<n>" to user n without a map lookup per request
// mattering to the figures.
type benchAuthz struct{ users []httpx.User }

func (a benchAuthz) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(token, "t"))
	if err != nil || n < 0 || n >= len(a.users) {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return a.users[n], nil
}

// BenchmarkHandlers measures the full handler path of each endpoint
// (decode, authenticate, domain, store, encode) through httptest, without
// the network.
func BenchmarkHandlers(b *testing.B) {
	const users = 2048
	now := time.Now()
	store := memstore.New()
	svc, err := mfa.New(store, mailer.SendFunc(func(context.Context, mailer.Message) error { return nil }),
		mfa.NewRandomKeyring(), mfa.Config{Now: func() time.Time { return now }, MaxFailures: 100,
			EmailResendInterval: time.Nanosecond, EmailHourlyLimit: 1 << 30, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	az := benchAuthz{}
	ctx := context.Background()
	codes := make([]string, users)
	for i := range users {
		u := fmt.Sprintf("user%d@example.com", i)
		az.users = append(az.users, httpx.User{Username: u, Email: u, MFAAt: now})
		key, _ := svc.BeginAuthenticator(ctx, u)
		secret, p, _ := mfa.ParseKeyURI(key.URI)
		if err := svc.VerifyAuthenticator(ctx, u, p.Code(secret, p.Step(now)-1)); err != nil {
			b.Fatal(err)
		}
		codes[i] = p.Code(secret, p.Step(now))
	}
	az.users = append(az.users, httpx.User{Username: "admin@example.com", Roles: []string{"ROLE_ADMIN_CUSTOMER"}})
	h := httpx.New(svc, httpx.Bearer(az), httpx.Config{Logger: slog.New(slog.DiscardHandler)}).Handler()
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = "Bearer t" + strconv.Itoa(i)
	}
	run := func(b *testing.B, method, path string, body func(i int) string, want int) {
		// The clock stands still, so failures add up over the runs b.Loop
		// makes (and the sub-benchmarks before): each starts with none
		// on record, or the checked answers below would be lockouts.
		for _, u := range az.users[:users] {
			for _, f := range []storage.Factor{storage.Authenticator, storage.Email} {
				if err := store.ResetAttempts(ctx, u.Username, f); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			var req *http.Request
			if body != nil {
				req = httptest.NewRequest(method, path, strings.NewReader(body(i)))
				req.Header.Set("Content-Type", "application/json")
			} else {
				req = httptest.NewRequest(method, path, nil)
			}
			req.Header.Set("Authorization", tokens[i%users])
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if i < users && rec.Code != want {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			i++
		}
	}
	b.Run("mfaDetails", func(b *testing.B) { run(b, "GET", "/oauth/users/mfaDetails", nil, 200) })
	b.Run("verify_ok", func(b *testing.B) {
		run(b, "PUT", "/oauth/users/mfa/verify", func(i int) string {
			return `{"mfatype":"AUTHENTICATOR","totp":"` + codes[i%users] + `"}`
		}, 200)
	})
	b.Run("verify_fail", func(b *testing.B) {
		run(b, "PUT", "/oauth/users/mfa/verify", func(int) string { return `{"mfatype":"AUTHENTICATOR","totp":"000000"}` }, 400)
	})
	b.Run("associateQRCode", func(b *testing.B) { run(b, "PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", nil, 409) })
	b.Run("enrollEmail", func(b *testing.B) { run(b, "PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", nil, 200) })
	b.Run("verifyEmail", func(b *testing.B) {
		run(b, "PUT", "/oauth/users/mfa/verifyEmail", func(int) string { return `{"mfatype":"EMAIL","totp":"000000"}` }, 400)
	})
	b.Run("resetMyQRCodeEnroll_fail", func(b *testing.B) {
		run(b, "POST", "/users/mfa/resetMyQRCodeEnroll", func(int) string { return `{"mfatype":"AUTHENTICATOR","totp":"000000"}` }, 400)
	})
	b.Run("verifyQRCodeEnroll_conflict", func(b *testing.B) {
		run(b, "PUT", "/users/mfa/verifyQRCodeEnroll", func(int) string { return `{"mfatype":"AUTHENTICATOR","totp":"000000"}` }, 409)
	})
	b.Run("adminReset_forbidden", func(b *testing.B) { run(b, "PUT", "/users/x/mfa/resetQRCodeEnroll", nil, 403) })
	b.Run("adminReset", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("PUT", "/users/nobody@example.com/mfa/resetQRCodeEnroll", nil)
			req.Header.Set("Authorization", "Bearer t"+strconv.Itoa(users)) // the admin
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkProblemRendering(b *testing.B) {
	err := fmt.Errorf("wrapped: %w", mfa.ErrInvalidCode)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		httpx.WriteProblem(rec, httpx.ProblemFor(err))
	}
}

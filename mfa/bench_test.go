package mfa_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

func BenchmarkTOTPMatch(b *testing.B) {
	p := mfa.TOTP{Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix, Period: 30 * time.Second, Skew: 1}
	secret := []byte("12345678901234567890")
	now := time.Unix(1700000000, 0)
	code := p.Code(secret, p.Step(now)+1)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := p.Match(secret, code, now); !ok {
			b.Fatal("no match")
		}
	}
}

func benchService(b *testing.B) (*mfa.Service, *time.Time) {
	now := time.Unix(1700000000, 0)
	svc, err := mfa.New(memstore.New(), mailer.SendFunc(func(context.Context, mailer.Message) error { return nil }),
		mfa.NewRandomKeyring(), mfa.Config{Now: func() time.Time { return now }, MaxFailures: 100,
			EmailResendInterval: time.Nanosecond, EmailHourlyLimit: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	return svc, &now
}

func BenchmarkStatus(b *testing.B) {
	svc, now := benchService(b)
	ctx := context.Background()
	key, _ := svc.BeginAuthenticator(ctx, "alice")
	secret, p, _ := mfa.ParseKeyURI(key.URI)
	svc.VerifyAuthenticator(ctx, "alice", p.Code(secret, p.Step(*now)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Status(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckAuthenticator is the verify hot path: open the secret,
// match the code, accept the step. Each iteration is another user, so the
// replay guard accepts every time.
func BenchmarkCheckAuthenticator(b *testing.B) {
	svc, now := benchService(b)
	ctx := context.Background()
	const users = 4096
	codes := make([]string, users)
	for i := range users {
		u := fmt.Sprintf("user%d", i)
		key, _ := svc.BeginAuthenticator(ctx, u)
		secret, p, _ := mfa.ParseKeyURI(key.URI)
		if err := svc.VerifyAuthenticator(ctx, u, p.Code(secret, p.Step(*now)-1)); err != nil {
			b.Fatal(err)
		}
		codes[i] = p.Code(secret, p.Step(*now))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := i % users
		err := svc.CheckAuthenticator(ctx, fmt.Sprintf("user%d", u), codes[u])
		if i < users && err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkEmailIssueAndVerify(b *testing.B) {
	var code string
	now := time.Unix(1700000000, 0)
	svc, err := mfa.New(memstore.New(), mailer.SendFunc(func(_ context.Context, m mailer.Message) error {
		code = mailertest.Code(m)
		return nil
	}), mfa.NewRandomKeyring(), mfa.Config{Now: func() time.Time { return now }, EmailResendInterval: time.Nanosecond, EmailHourlyLimit: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := fmt.Sprintf("user%d", i)
		i++
		if err := svc.BeginEmail(ctx, u, u+"@example.com"); err != nil {
			b.Fatal(err)
		}
		if err := svc.VerifyEmail(ctx, u, code); err != nil {
			b.Fatal(err)
		}
	}
}

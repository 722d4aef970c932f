package mfa_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// FuzzParseKeyURI: any otpauth URI an app might hold parses or fails
// cleanly, and a parsed secret round-trips through Code.
func FuzzParseKeyURI(f *testing.F) {
	f.Add("otpauth://totp/Acme:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme&algorithm=SHA1&digits=6&period=30")
	f.Add("otpauth://totp/A?secret=gezdgnbvgy3tqojq&digits=8&algorithm=SHA512&period=60")
	f.Add("otpauth://hotp/x?secret=====")
	f.Add("otpauth://totp/%zz?secret=A")
	f.Add("")
	f.Fuzz(func(t *testing.T, uri string) {
		secret, p, err := mfa.ParseKeyURI(uri)
		if err != nil {
			return
		}
		if p.Digits != otp.DigitsSix && p.Digits != otp.DigitsEight {
			return // apps would refuse these; Code must still not panic below
		}
		if p.Period <= 0 {
			return
		}
		code := p.Code(secret, 1)
		if len(code) != p.Digits.Length() {
			t.Fatalf("code %q for %d digits", code, p.Digits)
		}
	})
}

// FuzzMatch: no input code panics the checker, and a code matches only
// when it is the code of a step in the window.
func FuzzMatch(f *testing.F) {
	p := mfa.TOTP{Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix, Period: 30 * time.Second, Skew: 1}
	secret := []byte("12345678901234567890")
	now := time.Unix(1700000000, 0)
	f.Add("123456")
	f.Add(p.Code(secret, p.Step(now)))
	f.Add("")
	f.Add("１２３４５６")
	f.Add("12345\x00")
	f.Fuzz(func(t *testing.T, code string) {
		step, ok := p.Match(secret, code, now)
		if ok && p.Code(secret, step) != code {
			t.Fatalf("%q matched step %d whose code is %s", code, step, p.Code(secret, step))
		}
	})
}

// FuzzCompleteChallenge: no state token or code panics the sign-in, and
// only a token the service issued can succeed.
func FuzzCompleteChallenge(f *testing.F) {
	svc, err := mfa.New(memstore.New(), &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("v1.YWxpY2U.AUTHENTICATOR.1900000000.AAAA", "123456", "")
	f.Add("v1.YWxpY2U.ENROLL.1900000000.AAAA", "", "")
	f.Add("v1..EMAIL.x.y", "1", "RECOVERY")
	f.Add("v2.a.b.c.d", "123456", "SMS")
	f.Fuzz(func(t *testing.T, token, code, factor string) {
		_, err := svc.CompleteChallenge(context.Background(), token, mfa.Proof{Factor: mfa.Factor(factor), Code: code})
		if err == nil {
			t.Fatalf("a made-up token was accepted: %q", token)
		}
		if !errors.Is(err, mfa.ErrInvalidToken) && !errors.Is(err, mfa.ErrTokenExpired) {
			t.Fatalf("unexpected error for %q: %v", token, err)
		}
	})
}

// FuzzUseRecoveryCode: any typed recovery code is handled without panic,
// is never accepted for a user who has none, and is accepted for a user who
// has codes only when it is one of them (dashes, spaces, case and the
// look-alikes O, I and L aside). The failure counts are cleared before
// each input, so every input reaches the comparison instead of a lockout.
func FuzzUseRecoveryCode(f *testing.F) {
	ctx := context.Background()
	store := memstore.New()
	svc, err := mfa.New(store, &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{})
	if err != nil {
		f.Fatal(err)
	}
	key, err := svc.BeginAuthenticator(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	secret, p, err := mfa.ParseKeyURI(key.URI)
	if err != nil {
		f.Fatal(err)
	}
	if err := svc.VerifyAuthenticator(ctx, "alice", p.Code(secret, p.Step(time.Now()))); err != nil {
		f.Fatal(err)
	}
	codes, err := svc.GenerateRecoveryCodes(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("7KQ2-XM4D-9TPA-0WRC")
	f.Add("o0Il-")
	f.Add("\xff\xfe")
	f.Add(codes[0])
	f.Add(strings.ToLower(codes[1]))
	f.Add(strings.ReplaceAll(codes[2], "-", " "))
	f.Add(codes[3][:len(codes[3])-1])
	f.Fuzz(func(t *testing.T, code string) {
		for _, user := range []string{"alice", "nobody"} {
			if err := store.ResetAttempts(ctx, user, mfa.Recovery); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.UseRecoveryCode(ctx, "nobody", code); !errors.Is(err, mfa.ErrInvalidCode) {
			t.Fatalf("%q for a user without codes: %v, want ErrInvalidCode", code, err)
		}
		err := svc.UseRecoveryCode(ctx, "alice", code)
		switch {
		case err == nil && !slices.ContainsFunc(codes, func(c string) bool { return sameRecoveryCode(code, c) }):
			t.Fatalf("%q was accepted, but it is none of the issued codes", code)
		case err != nil && !errors.Is(err, mfa.ErrInvalidCode):
			t.Fatalf("%q: %v, want nil or ErrInvalidCode", code, err)
		}
	})
}

// sameRecoveryCode reports whether typed reads as the issued code, as
// UseRecoveryCode documents: dashes, spaces and case do not matter, and O,
// I and L read as 0, 1 and 1.
func sameRecoveryCode(typed, issued string) bool {
	norm := strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1")
	return norm.Replace(strings.ToUpper(typed)) == norm.Replace(issued)
}

package mfa

import (
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
)

// S1: RFC 4226 Appendix D.
func TestHOTPVectorsRFC4226(t *testing.T) {
	p := TOTP{Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix, Period: 30 * time.Second}
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, code := range want {
		if got := p.Code([]byte("12345678901234567890"), int64(counter)); got != code {
			t.Errorf("counter %d: got %s, want %s", counter, got, code)
		}
	}
}

// S1: RFC 6238 Appendix B, all three algorithms, 8 digits, including
// T = 20000000000 whose counter needs more than 32 bits; and the 6-digit
// truncation of the same values.
func TestTOTPVectorsRFC6238(t *testing.T) {
	seeds := map[otp.Algorithm]string{
		otp.AlgorithmSHA1:   "12345678901234567890",
		otp.AlgorithmSHA256: "12345678901234567890123456789012",
		otp.AlgorithmSHA512: strings.Repeat("1234567890", 6) + "1234",
	}
	vectors := []struct {
		unix                 int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, v := range vectors {
		for alg, want := range map[otp.Algorithm]string{otp.AlgorithmSHA1: v.sha1, otp.AlgorithmSHA256: v.sha256, otp.AlgorithmSHA512: v.sha512} {
			for _, digits := range []otp.Digits{otp.DigitsEight, otp.DigitsSix} {
				p := TOTP{Algorithm: alg, Digits: digits, Period: 30 * time.Second}
				now := time.Unix(v.unix, 0)
				step := p.Step(now)
				wantCode := want[8-digits.Length():]
				if got := p.Code([]byte(seeds[alg]), step); got != wantCode {
					t.Errorf("%v %d digits at %d: got %s, want %s", alg, digits, v.unix, got, wantCode)
				}
				if m, ok := p.Match([]byte(seeds[alg]), wantCode, now); !ok || m != step {
					t.Errorf("%v %d digits at %d: Match = %d,%v want %d", alg, digits, v.unix, m, ok, step)
				}
			}
		}
	}
}

// S2: codes of T-1, T and T+1 pass by default; T±2 fail.
func TestMatchWindow(t *testing.T) {
	p := TOTP{Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix, Period: 30 * time.Second, Skew: 1}
	secret := []byte("12345678901234567890")
	now := time.Unix(1700000015, 0)
	T := p.Step(now)
	for d := int64(-3); d <= 3; d++ {
		step, ok := p.Match(secret, p.Code(secret, T+d), now)
		wantOK := d >= -1 && d <= 1
		if ok != wantOK || (ok && step != T+d) {
			t.Errorf("offset %d: Match = %d,%v want ok=%v", d, step, ok, wantOK)
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", "12345678"} {
		if _, ok := p.Match(secret, bad, now); ok {
			t.Errorf("Match(%q) passed", bad)
		}
	}
	exact := p
	exact.Skew = 0
	if _, ok := exact.Match(secret, p.Code(secret, T-1), now); ok {
		t.Error("Skew 0 accepted the previous step")
	}
}

// S6: the key URI has the exact shape and encodes issuer and account.
func TestKeyURI(t *testing.T) {
	p := TOTP{Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix, Period: 30 * time.Second}
	secret := []byte("12345678901234567890")
	uri, err := p.keyURI("Acme: Corp", "al ice:x@example.com", secret)
	if err != nil {
		t.Fatal(err)
	}
	want := "otpauth://totp/Acme-%20Corp:al%20ice-x@example.com?algorithm=SHA1&digits=6&issuer=Acme-%20Corp&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	if uri != want {
		t.Fatalf("key URI\n got %s\nwant %s", uri, want)
	}
	got, params, err := ParseKeyURI(uri)
	if err != nil || string(got) != string(secret) || params.Digits != otp.DigitsSix || params.Period != 30*time.Second {
		t.Fatalf("ParseKeyURI = %q %+v %v", got, params, err)
	}
}

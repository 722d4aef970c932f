package httpx

import (
	"strings"
	"testing"

	"github.com/mfakit/mfakit/mfa"
)

// The one shape check of a code, as the validation tag and the proof
// check see it.
func TestCodeShape(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		code string
		ok   bool
	}{
		{"123456", true}, {"1234567", true}, {"12345678", true},
		{"", false}, {"12345", false}, {"123456789", false}, {"12a456", false}, {"１２３４５６", false}, {"12345\x00", false}, {" 123456", false},
	} {
		if got := isOTP(c.code); got != c.ok {
			t.Errorf("isOTP(%q) = %v", c.code, got)
		}
		err := validateStruct(&CodeRequest{MFAType: "AUTHENTICATOR", TOTP: c.code})
		if c.code != "" && (err == nil) != c.ok {
			t.Errorf("otpcode tag on %q: %v", c.code, err)
		}
		for _, f := range []mfa.Factor{"", mfa.Authenticator, mfa.Email} {
			if err := checkProofCode(mfa.Proof{Factor: f, Code: c.code}); (err == nil) != (c.ok || c.code == "") {
				t.Errorf("checkProofCode(%s, %q): %v", f, c.code, err)
			} else if err != nil && err.(*Problem).InvalidParams[0].Reason != otpReason {
				t.Errorf("checkProofCode(%s, %q): %v", f, c.code, err)
			}
		}
	}
	for code, ok := range map[string]bool{"7KQ2-XM4D-9TPA-0WRC": true, "x": true, "": false, strings.Repeat("A", 33): false} {
		if err := checkProofCode(mfa.Proof{Factor: mfa.Recovery, Code: code}); (err == nil) != ok {
			t.Errorf("recovery code %q: %v", code, err)
		}
	}
}

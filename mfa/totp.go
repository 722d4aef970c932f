package mfa

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// TOTP computes and checks time-based codes with fixed parameters.
type TOTP struct {
	// Algorithm, Digits and Period are the code parameters.
	Algorithm otp.Algorithm
	Digits    otp.Digits
	Period    time.Duration
	// Skew is how many steps either side of now are accepted.
	Skew int
}

// Step returns the time step of t: floor(t / Period) (RFC 6238, T0 = 0).
func (p TOTP) Step(t time.Time) int64 {
	return t.Unix() / int64(p.Period/time.Second)
}

// Code returns the code of secret at time step counter (RFC 4226 HOTP).
func (p TOTP) Code(secret []byte, counter int64) string {
	code, err := hotp.GenerateCodeCustom(b32.EncodeToString(secret), uint64(counter),
		hotp.ValidateOpts{Digits: p.Digits, Algorithm: p.Algorithm})
	if err != nil {
		// Only a malformed base32 string fails, and we encoded it ourselves.
		panic("mfa: hotp: " + err.Error())
	}
	return code
}

// Match reports the time step whose code equals code, within Skew steps of
// now. It computes and compares every candidate in constant time, so the
// time taken does not depend on which step (if any) matched (S21). When two
// steps share a code, the later wins.
func (p TOTP) Match(secret []byte, code string, now time.Time) (step int64, ok bool) {
	if len(code) != p.Digits.Length() {
		code = strings.Repeat("x", p.Digits.Length())
	}
	t := p.Step(now)
	matched := 0
	for s := t - int64(p.Skew); s <= t+int64(p.Skew); s++ {
		eq := subtle.ConstantTimeCompare([]byte(p.Code(secret, s)), []byte(code))
		step = int64(subtle.ConstantTimeSelect(eq, int(s), int(step)))
		matched |= eq
	}
	return step, matched == 1
}

// keyURI builds the otpauth URI of S6 for secret, using pquerna/otp so the
// format is the one authenticator apps parse.
func (p TOTP) keyURI(issuer, account string, secret []byte) (string, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      cleanLabel(issuer),
		AccountName: cleanLabel(account),
		Period:      uint(p.Period / time.Second),
		Secret:      secret,
		Digits:      p.Digits,
		Algorithm:   p.Algorithm,
		Rand:        rand.Reader,
	})
	if err != nil {
		return "", err
	}
	return key.URL(), nil
}

// cleanLabel makes s safe for the label of a key URI: no ':' (the
// issuer/account separator) and no control characters.
func cleanLabel(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ':':
			return '-'
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
}

// ParseKeyURI extracts the secret and parameters from an otpauth URI, as an
// authenticator app would. It is the inverse of what enrollment shows.
func ParseKeyURI(uri string) (secret []byte, p TOTP, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, TOTP{}, err
	}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		return nil, TOTP{}, err
	}
	secret, err = b32.DecodeString(strings.ToUpper(key.Secret()))
	if err != nil {
		return nil, TOTP{}, err
	}
	return secret, TOTP{Algorithm: key.Algorithm(), Digits: key.Digits(),
		Period: time.Duration(key.Period()) * time.Second}, nil
}

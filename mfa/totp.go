package mfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
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

// Code returns the code of secret at time step counter (RFC 4226 HOTP),
// zero-padded to Digits.
func (p TOTP) Code(secret []byte, counter int64) string {
	mac := hmac.New(hashFunc(p.Algorithm), secret)
	return fmt.Sprintf("%0*d", p.Digits.Length(), p.value(mac, counter, make([]byte, 0, 64)))
}

// value is the HOTP value of counter: HMAC, dynamic truncation (RFC 4226
// §5.3), modulo 10^Digits. mac is keyed with the secret and is reset here,
// so one mac serves every step of a check; buf is scratch space.
func (p TOTP) value(mac hash.Hash, counter int64, buf []byte) uint32 {
	mac.Reset()
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	mac.Write(msg[:])
	sum := mac.Sum(buf[:0])
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return v % pow10[p.Digits.Length()]
}

var pow10 = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

func hashFunc(a otp.Algorithm) func() hash.Hash {
	switch a {
	case otp.AlgorithmSHA256:
		return sha256.New
	case otp.AlgorithmSHA512:
		return sha512.New
	}
	return sha1.New
}

// parseCode reads a code of exactly n ASCII digits.
func parseCode(code string, n int) (uint32, bool) {
	if len(code) != n {
		return 0, false
	}
	var v uint32
	for i := 0; i < len(code); i++ {
		c := code[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint32(c-'0')
	}
	return v, true
}

// Match reports the time step whose code equals code, within Skew steps of
// now. It computes and compares every candidate in constant time, so the
// time taken does not depend on which step (if any) matched (S21). When two
// steps share a code, the later wins. HOTP is computed here rather than by
// pquerna/otp, whose Validate hides the step and whose GenerateCode decodes
// base32 and allocates per call; the RFC 4226 and 6238 vectors pin it.
func (p TOTP) Match(secret []byte, code string, now time.Time) (step int64, ok bool) {
	want, valid := parseCode(code, p.Digits.Length())
	mac := hmac.New(hashFunc(p.Algorithm), secret)
	var buf [64]byte
	t := p.Step(now)
	matched := 0
	for s := t - int64(p.Skew); s <= t+int64(p.Skew); s++ {
		eq := subtle.ConstantTimeEq(int32(p.value(mac, s, buf[:])), int32(want))
		step = int64(subtle.ConstantTimeSelect(eq, int(s), int(step)))
		matched |= eq
	}
	return step, valid && matched == 1
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

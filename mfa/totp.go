package mfa

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
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
	k := newHMACKey(p.Algorithm, secret)
	return fmt.Sprintf("%0*d", p.Digits.Length(), p.value(&k, counter))
}

// value is the HOTP value of counter: HMAC, dynamic truncation (RFC 4226
// §5.3), modulo 10^Digits. k is the secret, prepared once for every step
// of a check.
func (p TOTP) value(k *hmacKey, counter int64) uint32 {
	var buf [sha512.Size]byte
	sum := k.mac(buf[:0], counter)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return v % pow10[p.Digits.Length()]
}

var pow10 = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// hmacKey is an HMAC key (RFC 2104) prepared for one hash: the key XORed
// with ipad and with opad, one hash block each. mac computes the HMAC of
// a counter with the hash package's one-shot Sum functions on stack
// buffers, so a TOTP check allocates nothing, where crypto/hmac
// allocates two hash states and their saved copies for every key. The
// RFC 4226 and RFC 6238 vectors and a comparison with crypto/hmac
// (TestHMACKeyMatchesCryptoHMAC) pin it.
type hmacKey struct {
	alg        otp.Algorithm
	block      int // the hash's block size
	ipad, opad [sha512.BlockSize]byte
}

// newHMACKey prepares secret for HMAC with the hash of a (SHA1 unless
// SHA256 or SHA512). A secret longer than a block is hashed first, as RFC
// 2104 says; a shorter one is padded with zeros.
func newHMACKey(a otp.Algorithm, secret []byte) hmacKey {
	k := hmacKey{alg: a, block: sha1.BlockSize}
	switch a {
	case otp.AlgorithmSHA256:
		k.block = sha256.BlockSize
	case otp.AlgorithmSHA512:
		k.block = sha512.BlockSize
	}
	var hashed [sha512.Size]byte
	if len(secret) > k.block {
		secret = k.sum(hashed[:0], secret)
	}
	copy(k.ipad[:], secret)
	copy(k.opad[:], secret)
	for i := range k.block {
		k.ipad[i] ^= 0x36
		k.opad[i] ^= 0x5c
	}
	return k
}

// sum appends the hash of data to dst.
func (k *hmacKey) sum(dst, data []byte) []byte {
	switch k.alg {
	case otp.AlgorithmSHA256:
		s := sha256.Sum256(data)
		return append(dst, s[:]...)
	case otp.AlgorithmSHA512:
		s := sha512.Sum512(data)
		return append(dst, s[:]...)
	}
	s := sha1.Sum(data)
	return append(dst, s[:]...)
}

// mac appends HMAC(key, counter as 8 bytes big-endian) to dst:
// H((K ^ opad) || H((K ^ ipad) || counter)).
func (k *hmacKey) mac(dst []byte, counter int64) []byte {
	var inner [sha512.BlockSize + 8]byte
	n := copy(inner[:], k.ipad[:k.block])
	binary.BigEndian.PutUint64(inner[n:], uint64(counter))
	var outer [sha512.BlockSize + sha512.Size]byte
	n = copy(outer[:], k.opad[:k.block])
	msg := k.sum(outer[:n], inner[:n+8])
	return k.sum(dst, msg)
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
// It allocates nothing (see hmacKey).
func (p TOTP) Match(secret []byte, code string, now time.Time) (step int64, ok bool) {
	want, valid := parseCode(code, p.Digits.Length())
	k := newHMACKey(p.Algorithm, secret)
	t := p.Step(now)
	matched := 0
	for s := t - int64(p.Skew); s <= t+int64(p.Skew); s++ {
		eq := subtle.ConstantTimeEq(int32(p.value(&k, s)), int32(want))
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

package mfa

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"net/url"
	"strings"
	"sync"
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
	h := newHMAC(p.Algorithm, secret)
	defer h.release()
	return fmt.Sprintf("%0*d", p.Digits.Length(), p.value(h.mac(counter)))
}

// value is the HOTP value of an HMAC: dynamic truncation (RFC 4226
// §5.3), modulo 10^Digits.
func (p TOTP) value(sum []byte) uint32 {
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return v % pow10[p.Digits.Length()]
}

var pow10 = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// hmacState computes HMAC (RFC 2104) under one key of the 8-byte
// counters of HOTP. As crypto/hmac does, it hashes the key's ipad and
// opad blocks once and saves the two hash states, so each counter costs
// two hash blocks; unlike crypto/hmac, which allocates both hashes and
// their saved states for every key, it is recycled (hmacPools), so a
// TOTP check allocates nothing. release clears the key's states before
// the next use. The RFC 4226 and RFC 6238 vectors and a comparison with
// crypto/hmac (TestHMACMatchesCryptoHMAC) pin it.
type hmacState struct {
	pool         *sync.Pool
	inner, outer savableHash
	// innerAt and outerAt are the states after the ipad and opad blocks.
	innerAt, outerAt []byte
	pad              [sha512.BlockSize]byte
	counter          [8]byte
	sum              [sha512.Size]byte
}

// savableHash is a hash whose state can be saved and restored, as every
// hash of crypto/sha1, crypto/sha256 and crypto/sha512 can.
type savableHash interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// hmacPools recycle the hmacStates of SHA1, SHA256 and SHA512.
var hmacPools = [...]sync.Pool{
	{New: func() any { return newHMACState(sha1.New) }},
	{New: func() any { return newHMACState(sha256.New) }},
	{New: func() any { return newHMACState(sha512.New) }},
}

func newHMACState(h func() hash.Hash) *hmacState {
	return &hmacState{inner: h().(savableHash), outer: h().(savableHash)}
}

// newHMAC returns an hmacState keyed with secret for the hash of a (SHA1
// unless SHA256 or SHA512). A secret longer than a block is hashed first,
// as RFC 2104 says; a shorter one is padded with zeros. Release it after
// use.
func newHMAC(a otp.Algorithm, secret []byte) *hmacState {
	pool := &hmacPools[0]
	switch a {
	case otp.AlgorithmSHA256:
		pool = &hmacPools[1]
	case otp.AlgorithmSHA512:
		pool = &hmacPools[2]
	}
	h := pool.Get().(*hmacState)
	h.pool = pool
	block := h.inner.BlockSize()
	if len(secret) > block {
		h.outer.Reset()
		h.outer.Write(secret)
		secret = h.outer.Sum(h.sum[:0])
	}
	copy(h.pad[:], secret)
	for i := range block {
		h.pad[i] ^= 0x36
	}
	h.inner.Reset()
	h.inner.Write(h.pad[:block])
	h.innerAt, _ = h.inner.AppendBinary(h.innerAt[:0]) // cannot fail
	for i := range block {
		h.pad[i] ^= 0x36 ^ 0x5c
	}
	h.outer.Reset()
	h.outer.Write(h.pad[:block])
	h.outerAt, _ = h.outer.AppendBinary(h.outerAt[:0])
	clear(h.pad[:])
	clear(h.sum[:])
	return h
}

// mac returns HMAC(key, counter as 8 bytes big-endian):
// H((K ^ opad) || H((K ^ ipad) || counter)). The result is valid until
// the next call.
func (h *hmacState) mac(counter int64) []byte {
	h.inner.UnmarshalBinary(h.innerAt) // saved by AppendBinary: cannot fail
	binary.BigEndian.PutUint64(h.counter[:], uint64(counter))
	h.inner.Write(h.counter[:])
	sum := h.inner.Sum(h.sum[:0])
	h.outer.UnmarshalBinary(h.outerAt)
	h.outer.Write(sum)
	return h.outer.Sum(h.sum[:0])
}

// release forgets the key and returns h to its pool.
func (h *hmacState) release() {
	h.inner.Reset()
	h.outer.Reset()
	clear(h.innerAt)
	clear(h.outerAt)
	clear(h.sum[:])
	h.pool.Put(h)
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
// It allocates nothing (see hmacState).
func (p TOTP) Match(secret []byte, code string, now time.Time) (step int64, ok bool) {
	want, valid := parseCode(code, p.Digits.Length())
	h := newHMAC(p.Algorithm, secret)
	defer h.release()
	t := p.Step(now)
	matched := 0
	for s := t - int64(p.Skew); s <= t+int64(p.Skew); s++ {
		eq := subtle.ConstantTimeEq(int32(p.value(h.mac(s))), int32(want))
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

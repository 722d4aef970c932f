package mfa

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
	"testing"
	"time"

	"github.com/pquerna/otp"
)

// TestHMACMatchesCryptoHMAC checks the HMAC TOTP computes (hmacState)
// against crypto/hmac for every algorithm, with keys shorter
// than, as long as and longer than a hash block (S1).
func TestHMACMatchesCryptoHMAC(t *testing.T) {
	algs := []struct {
		alg otp.Algorithm
		h   func() hash.Hash
	}{{otp.AlgorithmSHA1, sha1.New}, {otp.AlgorithmSHA256, sha256.New}, {otp.AlgorithmSHA512, sha512.New}}
	for _, a := range algs {
		for _, n := range []int{0, 1, 16, 20, 32, 63, 64, 65, 127, 128, 129, 300} {
			key := make([]byte, n)
			rand.Read(key)
			h := newHMAC(a.alg, key)
			for _, counter := range []int64{0, 1, 56666666, 1 << 40, -1} {
				ref := hmac.New(a.h, key)
				var msg [8]byte
				binary.BigEndian.PutUint64(msg[:], uint64(counter))
				ref.Write(msg[:])
				want := ref.Sum(nil)
				if got := h.mac(counter); !bytes.Equal(got, want) {
					t.Fatalf("%v key of %d bytes, counter %d: got %x, want %x", a.alg, n, counter, got, want)
				}
			}
			h.release()
		}
	}
}

// TestMatchAllocatesNothing: a TOTP check allocates nothing.
func TestMatchAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, alg := range []otp.Algorithm{otp.AlgorithmSHA1, otp.AlgorithmSHA256, otp.AlgorithmSHA512} {
		p := TOTP{Algorithm: alg, Digits: otp.DigitsSix, Period: 30e9, Skew: 1}
		secret := []byte("12345678901234567890")
		if n := testing.AllocsPerRun(100, func() { p.Match(secret, "123456", time.Unix(1700000000, 0)) }); n != 0 {
			t.Errorf("%v: Match allocates %v times", alg, n)
		}
	}
}

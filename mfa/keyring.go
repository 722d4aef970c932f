package mfa

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// KeySize is the length of every key in a Keyring: AES-256.
const KeySize = 32

// ErrUnknownKey is returned when a sealed value names a key the Keyring
// does not hold.
var ErrUnknownKey = errors.New("mfa: sealed with an unknown key id")

// Keyring holds the keys that seal TOTP secrets at rest (S5) and key the
// hashes of one-time codes, recovery codes and state tokens (S10). One key
// is current: it seals and hashes everything new; the others only open and
// check what they made before, so keys can rotate without invalidating
// anything that is still valid (S25).
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
	// codeKeys holds one hash key per key, the current one first.
	codeKeys [][]byte
}

// NewKeyring returns a Keyring whose key named current seals new values.
// Every key must be KeySize bytes of secret random data, and every id must
// be non-empty and at most 32 bytes.
func NewKeyring(current string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("mfa: current key %q is not in the keyring", current)
	}
	k := &Keyring{current: current, aeads: map[string]cipher.AEAD{}}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		key := keys[id]
		if id == "" || len(id) > 32 {
			return nil, fmt.Errorf("mfa: key id %q must be 1 to 32 bytes", id)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("mfa: key %q is %d bytes, want %d", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		if k.aeads[id], err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	k.codeKeys = append(k.codeKeys, deriveCodeKey(keys[current]))
	for _, id := range ids {
		if id != current {
			k.codeKeys = append(k.codeKeys, deriveCodeKey(keys[id]))
		}
	}
	return k, nil
}

func deriveCodeKey(key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("mfakit code hash v1"))
	return mac.Sum(nil)
}

// NewRandomKeyring returns a Keyring with one fresh random key. What it
// seals cannot be opened after the process exits: use it for tests and for
// in-memory stores only.
func NewRandomKeyring() *Keyring {
	key := make([]byte, KeySize)
	rand.Read(key)
	k, err := NewKeyring("random", map[string][]byte{"random": key})
	if err != nil {
		panic(err)
	}
	return k
}

// CurrentID returns the id of the key that seals new values.
func (k *Keyring) CurrentID() string { return k.current }

// seal encrypts plaintext with the current key; ad binds the result to its
// owner, so a ciphertext copied to another user or factor does not open.
func (k *Keyring) seal(plaintext, ad []byte) (ciphertext []byte, keyID string) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, ad), k.current
}

// open decrypts what seal produced with the key named keyID.
func (k *Keyring) open(keyID string, ciphertext, ad []byte) ([]byte, error) {
	return k.openTo(nil, keyID, ciphertext, ad)
}

// openSecret opens a TOTP secret sealed under the binding secretAD(user,
// f, id) with the key named keyID. It is the check's one allocation of
// the Keyring: the binding and, after it, the plaintext share a buffer.
func (k *Keyring) openSecret(keyID string, sealed []byte, user string, f Factor, id string) ([]byte, error) {
	n := len(secretADPrefix) + len(f) + 1 + len(user) + 1 + len(id)
	buf := appendSecretAD(make([]byte, 0, n+len(sealed)), user, f, id)
	return k.openTo(buf[n:n], keyID, sealed, buf[:n:n])
}

// openTo is open appending the plaintext to dst.
func (k *Keyring) openTo(dst []byte, keyID string, ciphertext, ad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	if len(ciphertext) < aead.NonceSize() {
		return nil, errors.New("mfa: sealed value too short")
	}
	n := aead.NonceSize()
	return aead.Open(dst, ciphertext[:n], ciphertext[n:], ad)
}

// codeHash is the keyed hash under which a one-time code is stored: under
// the current key.
func (k *Keyring) codeHash(user, purpose, code string) []byte {
	return k.codeHashWith(0, user, purpose, code)
}

// hashKeys is how many keys a code may have been hashed under; codeHashWith
// with i from 0 to hashKeys()-1 tries them, the current one first (S25).
func (k *Keyring) hashKeys() int { return len(k.codeKeys) }

func (k *Keyring) codeHashWith(i int, user, purpose, code string) []byte {
	mac := hmac.New(sha256.New, k.codeKeys[i])
	var n [binary.MaxVarintLen64]byte
	for _, s := range []string{user, purpose, code} {
		mac.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		mac.Write([]byte(s))
	}
	return mac.Sum(nil)
}

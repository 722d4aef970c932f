package mfa_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

func key32() []byte {
	k := make([]byte, mfa.KeySize)
	rand.Read(k)
	return k
}

func TestNewKeyringRejectsBadKeys(t *testing.T) {
	for name, c := range map[string]struct {
		current string
		keys    map[string][]byte
	}{
		"current missing": {"k2", map[string][]byte{"k1": key32()}},
		"short key":       {"k1", map[string][]byte{"k1": make([]byte, 16)}},
		"empty id":        {"", map[string][]byte{"": key32()}},
		"no keys":         {"k1", nil},
	} {
		if _, err := mfa.NewKeyring(c.current, c.keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// S5: secrets are sealed with the current key (its id stored beside the
// ciphertext), bound to user and factor, still open after a rotation and
// are then re-sealed under the new key; an unknown key is an error, never
// a plaintext fallback.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	k1, k2 := key32(), key32()
	now := time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC)
	clock := func() time.Time { return now }
	newSvc := func(current string, keys map[string][]byte) *mfa.Service {
		ring, err := mfa.NewKeyring(current, keys)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := mfa.New(store, &mailertest.Recorder{}, ring, mfa.Config{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	old := newSvc("k1", map[string][]byte{"k1": k1})
	key, _ := old.BeginAuthenticator(ctx, "alice")
	secret, p, _ := mfa.ParseKeyURI(key.URI)
	if err := old.VerifyAuthenticator(ctx, "alice", p.Code(secret, p.Step(now))); err != nil {
		t.Fatal(err)
	}
	e, _ := store.Enrollment(ctx, "alice", storage.Authenticator)
	if e.KeyID != "k1" || bytes.Contains(e.Secret, secret) || len(e.Secret) < len(secret)+16 {
		t.Fatalf("stored secret not sealed: key %q, %d bytes", e.KeyID, len(e.Secret))
	}

	// A ciphertext copied to another user does not open (associated data).
	forged := e
	forged.User, forged.ID = "mallory", "forged"
	store.BeginEnrollment(ctx, forged)
	store.ConfirmEnrollment(ctx, "mallory", storage.Authenticator, "forged", 0, now)
	if err := old.CheckAuthenticator(ctx, "mallory", p.Code(secret, p.Step(now)+1)); err == nil || errors.Is(err, mfa.ErrInvalidCode) {
		t.Fatalf("a secret moved to another user opened: %v", err)
	}

	// Rotate: k2 is current, k1 still opens what it sealed.
	rotated := newSvc("k2", map[string][]byte{"k1": k1, "k2": k2})
	now = now.Add(30 * time.Second)
	if err := rotated.CheckAuthenticator(ctx, "alice", p.Code(secret, p.Step(now))); err != nil {
		t.Fatalf("check after rotation: %v", err)
	}
	if e, _ = store.Enrollment(ctx, "alice", storage.Authenticator); e.KeyID != "k2" {
		t.Fatalf("secret not re-sealed under the current key: %q", e.KeyID)
	}
	// Now k1 can be dropped.
	onlyNew := newSvc("k2", map[string][]byte{"k2": k2})
	now = now.Add(30 * time.Second)
	if err := onlyNew.CheckAuthenticator(ctx, "alice", p.Code(secret, p.Step(now))); err != nil {
		t.Fatalf("check with only the new key: %v", err)
	}
	// A store sealed with a key the ring lacks fails loudly.
	onlyOld := newSvc("k1", map[string][]byte{"k1": k1})
	now = now.Add(30 * time.Second)
	err := onlyOld.CheckAuthenticator(ctx, "alice", p.Code(secret, p.Step(now)))
	if !errors.Is(err, mfa.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
}

package storagetest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

func testLimits(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	users := []string{
		strings.Repeat("u", storage.MaxUserLen),
		"ユーザー@例え.jp",
		"emoji-😀-user",
		"quote'\"`; DROP TABLE x;--",
		"percent%_under_score",
		"back\\slash/slash",
	}
	for _, u := range users {
		e := pending(u, storage.Authenticator, strings.Repeat("i", 32))
		e.Secret = bytes.Repeat([]byte{0xff, 0x00, 0x7f}, storage.MaxSecretLen/3)
		e.KeyID = strings.Repeat("k", 32)
		must(t, s.BeginEnrollment(ctx, e))
		got, err := s.Enrollment(ctx, u, storage.Authenticator)
		must(t, err)
		sameEnrollment(t, got, e)
		must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, e.ID, 1<<40, base))
		must(t, s.AcceptStep(ctx, u, storage.Authenticator, 1<<40+1))
		hash := bytes.Repeat([]byte{0xab}, storage.MaxHashLen)
		purpose := strings.Repeat("p", storage.MaxPurposeLen)
		must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: purpose, Hash: hash, ExpiresAt: base.Add(time.Minute)}))
		must(t, s.ConsumeCode(ctx, u, purpose, hash, base))
		a, err := s.ReserveAttempt(ctx, u, storage.Email, base, policy)
		must(t, err)
		sameAttempts(t, "ReserveAttempt for "+u, a, storage.Attempts{Failures: 1, LastAt: base})
		must(t, s.ReplaceRecoveryCodes(ctx, u, [][]byte{hash, bytes.Repeat([]byte{0x00}, storage.MaxHashLen)}))
		must(t, s.UseRecoveryCode(ctx, u, hash))
		wait, err := s.ReserveSend(ctx, "email:"+u, base, storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 5})
		must(t, err)
		if wait != 0 {
			t.Fatalf("ReserveSend for %q waits %v", u, wait)
		}
	}
	// Near-identical names are distinct users.
	for _, u := range []string{"ユーザー@例え.j", strings.Repeat("u", storage.MaxUserLen-1), "Emoji-😀-user"} {
		if _, err := s.Enrollment(ctx, u, storage.Authenticator); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Enrollment(%q) = %v, want ErrNotFound", u, err)
		}
		if a, err := s.Attempts(ctx, u, storage.Email); err != nil || a.Failures != 0 {
			t.Fatalf("Attempts(%q) = %+v, %v, want none", u, a, err)
		}
		if n, err := s.RecoveryCodesLeft(ctx, u); err != nil || n != 0 {
			t.Fatalf("RecoveryCodesLeft(%q) = %d, %v, want 0", u, n, err)
		}
	}
}

func testIsolation(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const a, b = "iso-a", "iso-b"
	must(t, s.BeginEnrollment(ctx, pending(a, storage.Authenticator, "a1")))
	must(t, s.BeginEnrollment(ctx, pending(b, storage.Authenticator, "b1")))
	must(t, s.ConfirmEnrollment(ctx, a, storage.Authenticator, "a1", 5, base))
	got, err := s.Enrollment(ctx, b, storage.Authenticator)
	must(t, err)
	if got.Verified {
		t.Fatal("confirming a's enrollment verified b's")
	}
	wantErr(t, s.ConfirmEnrollment(ctx, b, storage.Authenticator, "a1", 5, base), storage.ErrNotFound)
	_, err = s.ReserveAttempt(ctx, a, storage.Authenticator, base, policy)
	must(t, err)
	sameAttempts(t, "b after a's reservation", stored(t, s, b, storage.Authenticator), storage.Attempts{})
}

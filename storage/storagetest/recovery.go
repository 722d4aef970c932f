package storagetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/mfakit/mfakit/storage"
)

// testRecovery runs on every store: RecoveryStore is part of Store.
func testRecovery(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u, other, racer = "recovery-u", "recovery-other", "recovery-race"
	left := func(u string) int {
		t.Helper()
		n, err := s.RecoveryCodesLeft(ctx, u)
		must(t, err)
		return n
	}
	h := func(i byte) []byte { return bytes.Repeat([]byte{i}, 32) }
	if left(u) != 0 {
		t.Fatal("a fresh user has recovery codes")
	}
	wantErr(t, s.UseRecoveryCode(ctx, u, h(1)), storage.ErrNotFound)
	must(t, s.ReplaceRecoveryCodes(ctx, u, [][]byte{h(1), h(2), h(3)}))
	must(t, s.ReplaceRecoveryCodes(ctx, other, [][]byte{h(1)}))
	if left(u) != 3 {
		t.Fatalf("left = %d, want 3", left(u))
	}
	must(t, s.UseRecoveryCode(ctx, u, h(2)))
	wantErr(t, s.UseRecoveryCode(ctx, u, h(2)), storage.ErrNotFound) // single use (S12)
	if left(u) != 2 || left(other) != 1 {
		t.Fatalf("left = %d and %d, want 2 and 1", left(u), left(other))
	}
	// Regenerating invalidates the old set (S12), and only the user's own.
	must(t, s.ReplaceRecoveryCodes(ctx, u, [][]byte{h(7), h(8)}))
	wantErr(t, s.UseRecoveryCode(ctx, u, h(1)), storage.ErrNotFound)
	must(t, s.UseRecoveryCode(ctx, u, h(8)))
	must(t, s.UseRecoveryCode(ctx, other, h(1)))
	must(t, s.ReplaceRecoveryCodes(ctx, u, nil))
	if left(u) != 0 {
		t.Fatal("an empty replacement kept codes")
	}
	wantErr(t, s.UseRecoveryCode(ctx, u, h(7)), storage.ErrNotFound)
	// Concurrent uses of one code: exactly one succeeds.
	must(t, s.ReplaceRecoveryCodes(ctx, racer, [][]byte{h(9)}))
	ok, errs := race(Workers, func(int) error { return s.UseRecoveryCode(ctx, racer, h(9)) })
	expectOne(t, "UseRecoveryCode", ok, errs, storage.ErrNotFound)
}

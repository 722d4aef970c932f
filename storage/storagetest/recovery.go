package storagetest

import (
	"bytes"
	"context"
	"errors"
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

	t.Run("ConcurrentReplace", func(t *testing.T) { testRecoveryReplaceRace(t, newStore) })
}

// testRecoveryReplaceRace races replacements of one user's set (S12).
// Each call makes its own set the whole set, so afterwards exactly one of
// them is left, whole, and no code of the others, or of the set they all
// replaced, works. In ReplaceRemove half the calls remove the set: the
// user then holds one whole set or none. A store that deletes then
// inserts without serialising the two (READ COMMITTED) merges sets.
func testRecoveryReplaceRace(t *testing.T, newStore NewStore) {
	const sets, size, rounds, old = 20, 10, 3, 0xff
	ctx := context.Background()
	// hash(r, i, j) is code j of set i in round r.
	hash := func(r, i, j int) []byte {
		h := bytes.Repeat([]byte{0xa5}, 32)
		h[0], h[1], h[2] = byte(r), byte(i), byte(j)
		return h
	}
	set := func(r, i int) [][]byte {
		hs := make([][]byte, size)
		for j := range hs {
			hs[j] = hash(r, i, j)
		}
		return hs
	}
	// check uses every code of round r's sets and returns the set left
	// whole (-1 for none), failing on a merged or partial result.
	check := func(t *testing.T, s storage.Store, user string, r int) int {
		t.Helper()
		left, err := s.RecoveryCodesLeft(ctx, user)
		must(t, err)
		whole := -1
		for i := range sets + 1 {
			if i == sets {
				i = old
			}
			used := 0
			for j := range size {
				err := s.UseRecoveryCode(ctx, user, hash(r, i, j))
				if err == nil {
					used++
				} else if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("round %d: UseRecoveryCode: %v", r, err)
				}
			}
			switch {
			case used == 0:
			case i == old:
				t.Fatalf("round %d: %d codes of the replaced set still work", r, used)
			case used == size && whole < 0:
				whole = i
			default:
				t.Fatalf("round %d: %d codes left; %d of %d codes of set %d work (whole set before it: %d, -1 for none): sets merged or split",
					r, left, used, size, i, whole)
			}
		}
		want := 0
		if whole >= 0 {
			want = size
		}
		if left != want {
			t.Fatalf("round %d: RecoveryCodesLeft = %d, want %d", r, left, want)
		}
		return whole
	}
	// run plays the rounds; replacement i stores set(r, i), or removes the
	// set if remove(i). It returns how many rounds left a set.
	run := func(t *testing.T, user string, remove func(i int) bool) (kept int) {
		s := newStore(t)
		for r := range rounds {
			// Round 0 starts with no set (in SQL an empty range locks
			// differently), the others with an old one.
			if r > 0 {
				must(t, s.ReplaceRecoveryCodes(ctx, user, set(r, old)))
			}
			_, errs := race(sets, func(i int) error {
				if remove(i) {
					return s.ReplaceRecoveryCodes(ctx, user, nil)
				}
				return s.ReplaceRecoveryCodes(ctx, user, set(r, i))
			})
			if len(errs) > 0 {
				t.Fatalf("round %d: %d of %d concurrent ReplaceRecoveryCodes failed, e.g. %v", r, len(errs), sets, errs[0])
			}
			if check(t, s, user, r) >= 0 {
				kept++
			}
		}
		return kept
	}
	t.Run("ReplaceReplace", func(t *testing.T) {
		if kept := run(t, "recovery-replace-race", func(int) bool { return false }); kept != rounds {
			t.Fatalf("only %d of %d rounds of replacements left a set", kept, rounds)
		}
	})
	t.Run("ReplaceRemove", func(t *testing.T) {
		run(t, "recovery-remove-race", func(i int) bool { return i%2 == 1 })
	})
}

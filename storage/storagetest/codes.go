package storagetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

func testCodes(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u, p = "codes-dave", "enroll-email"
	h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	exp := base.Add(10 * time.Minute)

	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	wantErr(t, s.ConsumeCode(ctx, u, p, h2, base), storage.ErrCodeMismatch)
	wantErr(t, s.ConsumeCode(ctx, u, "other", h1, base), storage.ErrNotFound)
	must(t, s.ConsumeCode(ctx, u, p, h1, base.Add(time.Minute))) // a mismatch did not delete it
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)

	// A resend invalidates the earlier code (S10).
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h2, ExpiresAt: exp}))
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrCodeMismatch)
	must(t, s.ConsumeCode(ctx, u, p, h2, base))

	// An expired code fails with ErrExpired once, then is gone.
	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, exp), storage.ErrExpired)
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)

	must(t, s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: h1, ExpiresAt: exp}))
	must(t, s.DeleteCode(ctx, u, p))
	must(t, s.DeleteCode(ctx, u, p))
	wantErr(t, s.ConsumeCode(ctx, u, p, h1, base), storage.ErrNotFound)
}

func testReserveSend(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	limit := storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 3}
	reserve := func(key string, at time.Time) time.Duration {
		t.Helper()
		wait, err := s.ReserveSend(ctx, key, at, limit)
		must(t, err)
		return wait
	}
	if w := reserve("send-k", base); w != 0 {
		t.Fatalf("first send waits %v", w)
	}
	if w := reserve("send-k", base.Add(20*time.Second)); w != 40*time.Second {
		t.Fatalf("send within MinGap waits %v, want 40s", w)
	}
	if w := reserve("send-other", base.Add(20*time.Second)); w != 0 {
		t.Fatalf("another key waits %v", w)
	}
	if w := reserve("send-k", base.Add(time.Minute)); w != 0 {
		t.Fatalf("second send after MinGap waits %v", w)
	}
	if w := reserve("send-k", base.Add(2*time.Minute)); w != 0 {
		t.Fatalf("third send waits %v", w)
	}
	if w := reserve("send-k", base.Add(10*time.Minute)); w != 50*time.Minute {
		t.Fatalf("fourth send in the window waits %v, want 50m", w)
	}
	if w := reserve("send-k", base.Add(time.Hour)); w != 0 {
		t.Fatalf("send in a new window waits %v", w)
	}
}

func testReleaseSend(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.SendReleaser)
	if !ok {
		t.Skip("the store cannot release sends (no storage.SendReleaser)")
	}
	limit := storage.SendLimit{MinGap: time.Minute, Window: time.Hour, Max: 2}
	reserve := func(at time.Time) time.Duration {
		t.Helper()
		wait, err := s.ReserveSend(ctx, "release-k", at, limit)
		must(t, err)
		return wait
	}
	must(t, r.ReleaseSend(ctx, "release-k", base)) // nothing recorded: no-op
	if reserve(base) != 0 {
		t.Fatal("first send refused")
	}
	must(t, r.ReleaseSend(ctx, "release-k", base.Add(time.Second))) // not the last send: no-op
	if reserve(base.Add(10*time.Second)) == 0 {
		t.Fatal("a non-matching release freed the gap")
	}
	must(t, r.ReleaseSend(ctx, "release-k", base))
	// The undelivered send no longer blocks the next one, nor counts.
	if reserve(base.Add(10*time.Second)) != 0 {
		t.Fatal("send after a release refused")
	}
	if reserve(base.Add(2*time.Minute)) != 0 {
		t.Fatal("the released send still counts toward the cap")
	}
	if reserve(base.Add(4*time.Minute)) == 0 {
		t.Fatal("the cap of 2 was not kept")
	}
}

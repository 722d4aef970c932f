package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

func testEnrollment(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "alice@example.com"

	_, err := s.Enrollment(ctx, u, storage.Authenticator)
	wantErr(t, err, storage.ErrNotFound)
	list, err := s.Enrollments(ctx, u)
	must(t, err)
	if len(list) != 0 {
		t.Fatalf("Enrollments of unknown user = %v, want none", list)
	}

	first := pending(u, storage.Authenticator, "id-1")
	must(t, s.BeginEnrollment(ctx, first))
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, first)

	// A new pending enrollment replaces the old one.
	second := pending(u, storage.Authenticator, "id-2")
	second.CreatedAt = base.Add(time.Minute)
	must(t, s.BeginEnrollment(ctx, second))
	got, err = s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, second)

	email := storage.Enrollment{User: u, Factor: storage.Email, ID: "id-e", CreatedAt: base,
		ExpiresAt: base.Add(5 * time.Minute)}
	must(t, s.BeginEnrollment(ctx, email))
	list, err = s.Enrollments(ctx, u)
	must(t, err)
	if len(list) != 2 || list[0].Factor != storage.Authenticator || list[1].Factor != storage.Email {
		t.Fatalf("Enrollments = %+v, want AUTHENTICATOR then EMAIL", list)
	}
	sameEnrollment(t, list[1], email)
	if len(list[1].Secret) != 0 {
		t.Fatalf("EMAIL secret = %q, want empty", list[1].Secret)
	}

	// A verified enrollment is never replaced.
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-2", 100, base.Add(time.Minute)))
	wantErr(t, s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "id-3")), storage.ErrAlreadyVerified)
	got, err = s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if got.ID != "id-2" || !got.Verified || got.LastStep != 100 {
		t.Fatalf("verified enrollment changed: %+v", got)
	}

	existed, err := s.DeleteEnrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if !existed {
		t.Fatal("DeleteEnrollment of a verified enrollment reported false")
	}
	existed, err = s.DeleteEnrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if existed {
		t.Fatal("DeleteEnrollment of a missing enrollment reported true")
	}
	_, err = s.Enrollment(ctx, u, storage.Authenticator)
	wantErr(t, err, storage.ErrNotFound)
	// Deleting one factor keeps the other.
	_, err = s.Enrollment(ctx, u, storage.Email)
	must(t, err)
	// After a delete a new enrollment starts from scratch.
	must(t, s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "id-4")))
	got, err = s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if got.Verified || got.LastStep != 0 || !got.VerifiedAt.IsZero() {
		t.Fatalf("re-enrollment kept old state: %+v", got)
	}
}

func testConfirm(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "confirm-bob"
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "nope", 1, base), storage.ErrNotFound)

	e := pending(u, storage.Authenticator, "id-1")
	must(t, s.BeginEnrollment(ctx, e))
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "other-id", 1, base), storage.ErrNotFound)
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Email, "id-1", 1, base), storage.ErrNotFound)
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-1", 1, e.ExpiresAt), storage.ErrExpired)

	at := base.Add(2 * time.Minute)
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-1", 57, at))
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	sameEnrollment(t, got, verify(e, 57, at))
	wantErr(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-1", 58, at), storage.ErrAlreadyVerified)
	// The step that confirmed the enrollment is used (S3).
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 57), storage.ErrStepReused)
}

func testAcceptStep(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	const u = "step-carol"
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 10), storage.ErrNotFound)
	must(t, s.BeginEnrollment(ctx, pending(u, storage.Authenticator, "id")))
	// A pending enrollment accepts no step.
	wantErr(t, s.AcceptStep(ctx, u, storage.Authenticator, 10), storage.ErrNotFound)
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 10, base))

	// 20000000000/30 needs more than 32 bits (S1).
	const big = int64(20000000000 / 30)
	for _, c := range []struct {
		step int64
		want error
	}{
		{10, storage.ErrStepReused}, {9, storage.ErrStepReused}, {11, nil}, {11, storage.ErrStepReused},
		{13, nil}, {12, storage.ErrStepReused}, {big, nil}, {big, storage.ErrStepReused}, {big + 1, nil},
	} {
		err := s.AcceptStep(ctx, u, storage.Authenticator, c.step)
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Fatalf("AcceptStep(%d) = %v, want %v", c.step, err, c.want)
		}
	}
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if got.LastStep != big+1 {
		t.Fatalf("LastStep = %d, want %d", got.LastStep, big+1)
	}
}

func testReseal(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t)
	r, ok := s.(storage.Resealer)
	if !ok {
		t.Skip("the store cannot reseal secrets (no storage.Resealer)")
	}
	const u = "reseal-u"
	e := pending(u, storage.Authenticator, "id")
	must(t, s.BeginEnrollment(ctx, e))
	must(t, s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 5, base))
	wantErr(t, r.ResealSecret(ctx, u, storage.Authenticator, "other-id", "k1", []byte("new"), "k2"), storage.ErrNotFound)
	wantErr(t, r.ResealSecret(ctx, u, storage.Authenticator, "id", "k0", []byte("new"), "k2"), storage.ErrNotFound)
	wantErr(t, r.ResealSecret(ctx, "reseal-nobody", storage.Authenticator, "id", "k1", []byte("new"), "k2"), storage.ErrNotFound)
	must(t, r.ResealSecret(ctx, u, storage.Authenticator, "id", "k1", []byte("resealed"), "k2"))
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	must(t, err)
	if string(got.Secret) != "resealed" || got.KeyID != "k2" || !got.Verified || got.LastStep != 5 {
		t.Fatalf("after reseal: %+v", got)
	}
	// The second of two racing reseals finds the key id changed.
	wantErr(t, r.ResealSecret(ctx, u, storage.Authenticator, "id", "k1", []byte("again"), "k2"), storage.ErrNotFound)
}

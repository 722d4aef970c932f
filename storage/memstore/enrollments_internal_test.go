package memstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/mfakit/mfakit/storage"
)

// TestRecordSize pins the record at one 64-byte size class: a field more
// costs every enrolled user 16 bytes or more (BenchmarkMemoryPerUser).
func TestRecordSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is planned for 64-bit platforms")
	}
	if n := unsafe.Sizeof(enrollment{}); n != 64 {
		t.Fatalf("enrollment record is %d bytes, want 64", n)
	}
}

// TestKeySharesData checks that each map key points into its record's
// data, after a first enrollment, a replacing one and a reseal, so no key
// keeps the caller's string or an old record's data alive.
func TestKeySharesData(t *testing.T) {
	ctx := context.Background()
	s := New()
	const u = "keys@example.com"
	now := time.Now()
	check := func(what string) {
		t.Helper()
		sh := s.shard(u)
		for key, r := range sh.authenticators {
			if unsafe.StringData(key) != unsafe.StringData(r.data) {
				t.Fatalf("%s: the key of %q does not point into its record's data", what, key)
			}
		}
	}
	e := storage.Enrollment{User: u, Factor: storage.Authenticator, ID: "id-1", Secret: []byte("s1"), KeyID: "k1",
		CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.BeginEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	check("first enrollment")
	e.ID = "id-2"
	if err := s.BeginEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	check("replacing enrollment")
	if err := s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id-2", 1, now); err != nil {
		t.Fatal(err)
	}
	if err := s.ResealSecret(ctx, u, storage.Authenticator, "id-2", "k1", []byte("resealed"), "k2"); err != nil {
		t.Fatal(err)
	}
	check("reseal")
	got, err := s.Enrollment(ctx, u, storage.Authenticator)
	if err != nil || got.ID != "id-2" || string(got.Secret) != "resealed" || got.KeyID != "k2" || !got.Verified {
		t.Fatalf("after reseal: %+v, %v", got, err)
	}
}

// TestOtherFactors covers enrollments of factors other than the two
// mfakit enrolls, which the conformance suite does not store: they are
// kept, listed in factor-name order, and removed by every removal, after
// which their maps are dropped.
func TestOtherFactors(t *testing.T) {
	ctx := context.Background()
	s := New()
	const u = "other@example.com"
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	begin := func(f storage.Factor, expires time.Time) {
		t.Helper()
		err := s.BeginEnrollment(ctx, storage.Enrollment{User: u, Factor: f, ID: "id-" + string(f),
			Secret: []byte("sealed"), KeyID: "k1", CreatedAt: base, ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
	}
	factors := func() []storage.Factor {
		t.Helper()
		es, err := s.Enrollments(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var fs []storage.Factor
		for _, e := range es {
			if e.User != u || e.ID != "id-"+string(e.Factor) {
				t.Fatalf("Enrollments: %+v", e)
			}
			fs = append(fs, e.Factor)
		}
		return fs
	}
	later := base.Add(time.Hour)
	for _, f := range []storage.Factor{"SMS", storage.Email, "APP", storage.Authenticator} {
		begin(f, later)
	}
	begin("BACKUP", base.Add(time.Minute))
	if got, want := factors(), []storage.Factor{"APP", storage.Authenticator, "BACKUP", storage.Email, "SMS"}; !slices.Equal(got, want) {
		t.Fatalf("Enrollments factors = %v, want %v", got, want)
	}
	if err := s.ConfirmEnrollment(ctx, u, "SMS", "id-SMS", 3, base); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptStep(ctx, u, "SMS", 3); !errors.Is(err, storage.ErrStepReused) {
		t.Fatalf("AcceptStep of the used step = %v, want ErrStepReused", err)
	}
	if _, err := s.Enrollment(ctx, u, "NONE"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Enrollment of a factor never stored = %v, want ErrNotFound", err)
	}

	n, err := s.DeleteExpired(ctx, base.Add(2*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want the expired BACKUP enrollment", n, err)
	}
	if ok, err := s.DeleteEnrollment(ctx, u, "APP"); !ok || err != nil {
		t.Fatalf("DeleteEnrollment(APP) = %v, %v", ok, err)
	}
	if got, want := factors(), []storage.Factor{storage.Authenticator, storage.Email, "SMS"}; !slices.Equal(got, want) {
		t.Fatalf("Enrollments factors = %v, want %v", got, want)
	}
	if err := s.ForgetUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	if got := factors(); len(got) != 0 {
		t.Fatalf("Enrollments after ForgetUser = %v", got)
	}
	for i := range s.shards {
		if m := s.shards[i].otherFactors; len(m) != 0 {
			t.Fatalf("shard %d keeps maps for factors nobody holds: %v", i, m)
		}
	}
}

// TestTimes checks what the record keeps of times: the instant to the
// microsecond, returned in UTC, with the zero time and the Unix epoch
// kept apart.
func TestTimes(t *testing.T) {
	ctx := context.Background()
	s := New()
	const u = "times@example.com"
	created := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	epoch := time.Unix(0, 0)
	err := s.BeginEnrollment(ctx, storage.Enrollment{User: u, Factor: storage.Email, ID: "id",
		CreatedAt: created, ExpiresAt: epoch})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Enrollment(ctx, u, storage.Email)
	if err != nil {
		t.Fatal(err)
	}
	if want := created.Truncate(time.Microsecond).UTC(); got.CreatedAt != want {
		t.Fatalf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
	if got.ExpiresAt.IsZero() || !got.ExpiresAt.Equal(epoch) || got.ExpiresAt.Location() != time.UTC {
		t.Fatalf("ExpiresAt = %v, want the Unix epoch in UTC", got.ExpiresAt)
	}
	if !got.VerifiedAt.IsZero() || got.Secret != nil {
		t.Fatalf("pending EMAIL enrollment: %+v", got)
	}
}

package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
	"github.com/mfakit/mfakit/storage/storagetest"
)

// TestConformance runs the storage conformance suite on fresh stores.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(testing.TB) storage.Store { return memstore.New() })
}

// BenchmarkStore measures the hot operations of the suite's benchmark.
func BenchmarkStore(b *testing.B) {
	storagetest.Benchmark(b, func(testing.TB) storage.Store { return memstore.New() })
}

// BenchmarkMemoryPerUser measures the heap an enrolled user costs: a
// verified authenticator with a realistic username, id and sealed secret.
// Run with -benchtime=1000000x to hold a million users.
func BenchmarkMemoryPerUser(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	secret := make([]byte, 48) // 20-byte secret + 12-byte nonce + 16-byte tag
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := memstore.New()
	i := 0
	for b.Loop() {
		u := fmt.Sprintf("user%07d@example.com", i)
		id := fmt.Sprintf("%032x", i)
		if err := s.BeginEnrollment(ctx, storage.Enrollment{User: u, Factor: storage.Authenticator, ID: id,
			Secret: secret, KeyID: "k1", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			b.Fatal(err)
		}
		if err := s.ConfirmEnrollment(ctx, u, storage.Authenticator, id, 1, now); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(i), "heap-bytes/user")
	// The store must hold what it was given, so that the figure counts it.
	for _, n := range []int{0, i / 2, i - 1} {
		e, err := s.Enrollment(ctx, fmt.Sprintf("user%07d@example.com", n), storage.Authenticator)
		if err != nil || e.ID != fmt.Sprintf("%032x", n) || len(e.Secret) != len(secret) || e.KeyID != "k1" ||
			!e.Verified || e.LastStep != 1 {
			b.Fatalf("user %d: %+v, %v", n, e, err)
		}
	}
}

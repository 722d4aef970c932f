package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// Benchmark measures the hot operations of a Store: loading a user's
// status, accepting a TOTP step, reserving a check (with the enrollment,
// through storage.ReservingReader, when the store offers it), and issuing
// plus consuming an email code. Each runs in parallel over many users, as a
// busy server would call it. Backends call it from a Benchmark function:
//
//	func BenchmarkStore(b *testing.B) { storagetest.Benchmark(b, newStore) }
func Benchmark(b *testing.B, newStore NewStore) {
	ctx := context.Background()
	const users = 1024
	s := newStore(b)
	for i := range users {
		u := fmt.Sprintf("bench-%d@example.com", i)
		e := pending(u, storage.Authenticator, "id")
		if err := s.BeginEnrollment(ctx, e); err != nil {
			b.Fatal(err)
		}
		if err := s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 1, base); err != nil {
			b.Fatal(err)
		}
	}
	name := func(i int64) string { return fmt.Sprintf("bench-%d@example.com", i%users) }

	b.Run("Enrollments", func(b *testing.B) {
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Enrollments(ctx, name(n.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("AcceptStep", func(b *testing.B) {
		var n, step atomic.Int64
		step.Store(1)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// Mostly fresh steps, so the guard does real writes.
				err := s.AcceptStep(ctx, name(n.Add(1)), storage.Authenticator, step.Add(1))
				if err != nil && !errors.Is(err, storage.ErrStepReused) {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("ReserveAttempt", func(b *testing.B) {
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.ReserveAttempt(ctx, name(n.Add(1)), storage.Email, base, unbounded); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if r, ok := s.(storage.ReservingReader); ok {
		b.Run("ReserveFactor", func(b *testing.B) {
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := r.ReserveFactor(ctx, name(n.Add(1)), storage.Authenticator, base, unbounded); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("PutConsumeCode", func(b *testing.B) {
		var n atomic.Int64
		hash := []byte("0123456789abcdef0123456789abcdef")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				u := name(n.Add(1))
				if err := s.PutCode(ctx, storage.Code{User: u, Purpose: "bench", Hash: hash, ExpiresAt: base.Add(time.Hour)}); err != nil {
					b.Error(err)
					return
				}
				if err := s.ConsumeCode(ctx, u, "bench", hash, base); err != nil && !errors.Is(err, storage.ErrNotFound) {
					b.Error(err)
					return
				}
			}
		})
	})
}

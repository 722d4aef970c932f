package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// BenchmarkVerifyHotPath drives the store's part of a successful verify,
// ReserveFactor then AcceptStep, from many goroutines at once, each call
// for a user of its own: the concurrency under which PostgreSQL's
// batching pays. -cpu sets nothing here; the goroutines number 32 per
// GOMAXPROCS (b.SetParallelism).
func BenchmarkVerifyHotPath(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			db := be.open(b)
			db.SetMaxOpenConns(32)
			db.SetMaxIdleConns(32)
			s := newStore(b, db, be.dialect)
			now := time.Now()
			const users = 2048
			for i := range users {
				u := fmt.Sprintf("hot%05d@example.com", i)
				e := storage.Enrollment{User: u, Factor: storage.Authenticator, ID: "id", Secret: make([]byte, 48),
					KeyID: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.BeginEnrollment(ctx, e); err != nil {
					b.Fatal(err)
				}
				if err := s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 1, now); err != nil {
					b.Fatal(err)
				}
			}
			p := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
			var next, step atomic.Int64
			step.Store(1)
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := fmt.Sprintf("hot%05d@example.com", next.Add(1)%users)
					if _, _, err := s.ReserveFactor(ctx, u, storage.Authenticator, time.Now(), p); err != nil {
						b.Error(err)
						return
					}
					if err := s.AcceptStep(ctx, u, storage.Authenticator, step.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

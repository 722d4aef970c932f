package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// BenchmarkVerifyHotPath drives the store's part of a verify from many
// goroutines at once, each call for a user of its own: the concurrency
// under which the batching pays. The goroutines number 32 per GOMAXPROCS
// (b.SetParallelism). ok: ReserveFactor then AcceptStep (a right code);
// fail: ReserveFactor then Sync (a wrong code; Sync returns at once where
// a reservation is durable when it returns).
func BenchmarkVerifyHotPath(b *testing.B) {
	for _, be := range backends {
		for _, ok := range []bool{true, false} {
			name := be.name + "/ok"
			if !ok {
				name = be.name + "/fail"
			}
			b.Run(name, func(b *testing.B) { benchmarkHotPath(b, be.open(b), be.dialect, ok) })
		}
	}
}

func benchmarkHotPath(b *testing.B, db *sql.DB, dialect sqlstore.Dialect, ok bool) {
	ctx := context.Background()
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	s := newStore(b, db, dialect)
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
	// Failures never lock: fail runs as many checks as it likes.
	p := storage.LockPolicy{MaxFailures: 100, Base: time.Nanosecond, Max: time.Nanosecond}
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
			var err error
			if ok {
				err = s.AcceptStep(ctx, u, storage.Authenticator, step.Add(1))
			} else {
				err = s.Sync(ctx)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

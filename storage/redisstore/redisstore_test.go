package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/redisstore"
	"github.com/mfakit/mfakit/storage/storagetest"
)

// newStore returns a store with a fresh key prefix and deletes its keys
// when the test ends.
func newStore(t testing.TB) *redisstore.Store {
	t.Helper()
	rdb := testdb.Redis(t)
	prefix := testdb.Unique("mfakit-test:")
	s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t testing.TB) storage.Store { return newStore(t) })
}

func TestClosedConnection(t *testing.T) {
	rdb := testdb.Redis(t)
	s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: testdb.Unique("mfakit-test:")})
	if err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	storagetest.Unavailable(t, s)
}

// Pending records and codes carry TTLs so Redis drops them after they
// expire, failure state AttemptIdle after its last reservation; verified
// enrollments do not.
func TestTTLs(t *testing.T) {
	rdb := testdb.Redis(t)
	prefix := testdb.Unique("mfakit-test:")
	s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	e := storage.Enrollment{User: "u", Factor: storage.Authenticator, ID: "i", Secret: []byte("s"), KeyID: "k",
		CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	if err := s.BeginEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCode(ctx, storage.Code{User: "u", Purpose: "p", Hash: []byte("h"), ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	p := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
	if _, err := s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p); err != nil {
		t.Fatal(err)
	}
	ttls := map[string]time.Duration{}
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		ttls[iter.Val()] = rdb.PTTL(ctx, iter.Val()).Val()
	}
	t.Cleanup(func() {
		for k := range ttls {
			rdb.Del(ctx, k)
		}
	})
	if len(ttls) != 5 { // enrollment, code, code index, failure state, request marker
		t.Fatalf("keys = %v", ttls)
	}
	for k, ttl := range ttls {
		isAttempts := strings.Contains(k, "}:a:")
		switch {
		case strings.Contains(k, "}:r:"): // a reservation's request id, kept to answer resends
			if ttl <= 0 || ttl > time.Minute {
				t.Errorf("%s: TTL %v, want at most a minute", k, ttl)
			}
		case isAttempts && (ttl <= storage.AttemptIdle-time.Minute || ttl > storage.AttemptIdle):
			t.Errorf("%s: failure state TTL %v, want %v", k, ttl, storage.AttemptIdle)
		case !isAttempts && (ttl < 69*time.Minute || ttl > 70*time.Minute):
			t.Errorf("%s: TTL %v, want expiry + 1h grace", k, ttl)
		}
	}
	if err := s.ConfirmEnrollment(ctx, "u", storage.Authenticator, "i", 1, now); err != nil {
		t.Fatal(err)
	}
	iter = rdb.Scan(ctx, 0, prefix+"*:e:*", 100).Iterator()
	for iter.Next(ctx) {
		if ttl := rdb.PTTL(ctx, iter.Val()).Val(); ttl != -1 {
			t.Errorf("verified enrollment expires (%v)", ttl)
		}
	}
}

// TestKilledConnections kills the client's connections on the server again
// and again during concurrent writes (durability, issue #3).
func TestKilledConnections(t *testing.T) {
	rdb, kill := testdb.RedisKillable(t)
	s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: testdb.Unique("mfakit-test:")})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Disrupted(t, s, kill)
}

func BenchmarkStore(b *testing.B) {
	storagetest.Benchmark(b, func(t testing.TB) storage.Store { return newStore(t) })
}

package redisstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/redisstore"
	"github.com/mfakit/mfakit/storage/storagetest"
)

// redises are the deployments every test here runs on: one server
// (MFAKIT_REDIS_ADDR) and a three-master Redis Cluster
// (MFAKIT_REDIS_CLUSTER_ADDRS, started by .ci/redis-cluster). Each skips
// when its variable is unset. On the cluster every script must keep its
// keys in one slot, or Redis answers CROSSSLOT.
var redises = []struct {
	name     string
	open     func(testing.TB) redis.UniversalClient
	killable func(testing.TB) (redis.UniversalClient, func() error)
}{
	{"Redis", testdb.Redis, testdb.RedisKillable},
	{"Cluster", func(t testing.TB) redis.UniversalClient { return testdb.RedisCluster(t) },
		func(t testing.TB) (redis.UniversalClient, func() error) { return testdb.RedisClusterKillable(t) }},
}

// onEachRedis runs test once per deployment, as a subtest named after it.
func onEachRedis(t *testing.T, test func(t *testing.T, open func(testing.TB) redis.UniversalClient)) {
	for _, r := range redises {
		t.Run(r.name, func(t *testing.T) { test(t, r.open) })
	}
}

// newStore returns a store on a client of open with a fresh key prefix,
// and deletes its keys when the test ends.
func newStore(t testing.TB, open func(testing.TB) redis.UniversalClient) *redisstore.Store {
	t.Helper()
	rdb := open(t)
	prefix := testdb.Unique("mfakit-test:")
	s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	testdb.DeleteRedisKeys(t, rdb, prefix)
	return s
}

func TestConformance(t *testing.T) {
	onEachRedis(t, func(t *testing.T, open func(testing.TB) redis.UniversalClient) {
		storagetest.Run(t, func(t testing.TB) storage.Store { return newStore(t, open) })
	})
}

func TestClosedConnection(t *testing.T) {
	onEachRedis(t, func(t *testing.T, open func(testing.TB) redis.UniversalClient) {
		rdb := open(t)
		s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: testdb.Unique("mfakit-test:")})
		if err != nil {
			t.Fatal(err)
		}
		rdb.Close()
		storagetest.Unavailable(t, s)
	})
}

// Pending records and codes carry TTLs so Redis drops them after they
// expire, failure state AttemptIdle after its last reservation; verified
// enrollments do not.
func TestTTLs(t *testing.T) {
	onEachRedis(t, testTTLs)
}

func testTTLs(t *testing.T, open func(testing.TB) redis.UniversalClient) {
	rdb := open(t)
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
	testdb.DeleteRedisKeys(t, rdb, prefix)
	ttls := map[string]time.Duration{}
	for _, k := range testdb.RedisKeys(t, rdb, prefix+"*") {
		ttls[k] = rdb.PTTL(ctx, k).Val()
	}
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
	for _, k := range testdb.RedisKeys(t, rdb, prefix+"*:e:*") {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl != -1 {
			t.Errorf("verified enrollment expires (%v)", ttl)
		}
	}
}

// TestKilledConnections kills the client's connections on the server again
// and again during concurrent writes (durability, issue #3).
func TestKilledConnections(t *testing.T) {
	for _, r := range redises {
		t.Run(r.name, func(t *testing.T) {
			rdb, kill := r.killable(t)
			prefix := testdb.Unique("mfakit-test:")
			s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			testdb.DeleteRedisKeys(t, rdb, prefix)
			storagetest.Disrupted(t, s, kill)
		})
	}
}

func BenchmarkStore(b *testing.B) {
	for _, r := range redises {
		b.Run(r.name, func(b *testing.B) {
			storagetest.Benchmark(b, func(t testing.TB) storage.Store { return newStore(t, r.open) })
		})
	}
}

package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/redisstore"
)

// counter is a go-redis hook that counts round trips (a command, or a
// pipeline, sent and answered) and the commands they carried.
type counter struct{ trips, cmds atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// hotStore returns a store (with opts, but for the key prefix) whose
// client counts its round trips, with an enrolled, verified user "u"
// (authenticator and email).
func hotStore(t testing.TB, open func(testing.TB) redis.UniversalClient, opts redisstore.Options) (*redisstore.Store, *counter) {
	t.Helper()
	rdb := open(t)
	prefix := testdb.Unique("mfakit-test:")
	opts.KeyPrefix = prefix
	s, err := redisstore.New(rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	testdb.DeleteRedisKeys(t, rdb, prefix)
	ctx := context.Background()
	now := time.Now()
	for _, f := range []storage.Factor{storage.Authenticator, storage.Email} {
		e := storage.Enrollment{User: "u", Factor: f, ID: "id-" + string(f), Secret: []byte("sealed\x00:secret "),
			KeyID: "k1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.BeginEnrollment(ctx, e); err != nil {
			t.Fatal(err)
		}
		if err := s.ConfirmEnrollment(ctx, "u", f, e.ID, 1, now); err != nil {
			t.Fatal(err)
		}
	}
	c := &counter{}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// Every command reaches Redis through a node's client, the
		// autopipeliner's too: count there, once.
		err := cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
			n.AddHook(c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		rdb.AddHook(c)
	}
	return s, c
}

// hotOps are the operations of the kit's hot paths: status (Enrollments),
// verify_ok (ReserveFactor then AcceptStep) and verify_fail
// (ReserveFactor).
func hotOps(s *redisstore.Store) []struct {
	name string
	cmds int64 // per call, all in one round trip
	op   func(ctx context.Context, i int) error
} {
	p := storage.LockPolicy{MaxFailures: 1 << 30, Base: time.Minute, Max: time.Hour}
	return []struct {
		name string
		cmds int64
		op   func(ctx context.Context, i int) error
	}{
		// One HMGET per factor, pipelined: on Redis 7.0 a script costs
		// the server more than ten plain commands.
		{"Enrollments", 2, func(ctx context.Context, i int) error {
			es, err := s.Enrollments(ctx, "u")
			if err == nil && len(es) != 2 {
				err = fmt.Errorf("%d enrollments", len(es))
			}
			return err
		}},
		{"ReserveFactor", 1, func(ctx context.Context, i int) error {
			e, _, err := s.ReserveFactor(ctx, "u", storage.Authenticator, time.Now(), p)
			if err == nil && e.ID != "id-AUTHENTICATOR" {
				err = fmt.Errorf("read %+v", e)
			}
			return err
		}},
		{"ReserveFactorMissing", 1, func(ctx context.Context, i int) error {
			_, _, err := s.ReserveFactor(ctx, "nobody", storage.Authenticator, time.Now(), p)
			if errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
			return err
		}},
		{"AcceptStep", 1, func(ctx context.Context, i int) error {
			return s.AcceptStep(ctx, "u", storage.Authenticator, int64(i)+2)
		}},
	}
}

// Each operation of the hot paths is one round trip, carrying one command
// (two for Enrollments), with the autopipeliner and without.
func TestHotPathRoundTrips(t *testing.T) {
	onEachRedis(t, func(t *testing.T, open func(testing.TB) redis.UniversalClient) {
		for _, opts := range []redisstore.Options{{}, {NoAutoPipeline: true}} {
			t.Run(fmt.Sprintf("NoAutoPipeline=%v", opts.NoAutoPipeline), func(t *testing.T) {
				testHotPathRoundTrips(t, open, opts)
			})
		}
	})
}

func testHotPathRoundTrips(t *testing.T, open func(testing.TB) redis.UniversalClient, opts redisstore.Options) {
	s, c := hotStore(t, open, opts)
	ctx := context.Background()
	for _, o := range hotOps(s) {
		// The first call may load a script (NOSCRIPT, then EVAL).
		if err := o.op(ctx, 0); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		c.trips.Store(0)
		c.cmds.Store(0)
		const n = 10
		for i := 1; i <= n; i++ {
			if err := o.op(ctx, i); err != nil {
				t.Fatalf("%s: %v", o.name, err)
			}
		}
		if trips, cmds := c.trips.Load(), c.cmds.Load(); trips != n || cmds != n*o.cmds {
			t.Errorf("%s: %.1f round trips and %.1f commands per call, want 1 and %d",
				o.name, float64(trips)/n, float64(cmds)/n, o.cmds)
		}
	}
}

// BenchmarkHotPath reports round trips, commands and allocations per
// operation of the hot paths.
func BenchmarkHotPath(b *testing.B) {
	for _, r := range redises {
		b.Run(r.name, func(b *testing.B) {
			s, c := hotStore(b, r.open, redisstore.Options{})
			ctx := context.Background()
			for _, o := range hotOps(s) {
				b.Run(o.name, func(b *testing.B) {
					if err := o.op(ctx, 0); err != nil {
						b.Fatal(err)
					}
					c.trips.Store(0)
					c.cmds.Store(0)
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						i++
						if err := o.op(ctx, i); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(c.trips.Load())/float64(i), "trips/op")
					b.ReportMetric(float64(c.cmds.Load())/float64(i), "cmds/op")
				})
			}
		})
	}
}

package httpx_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/redisstore"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// instancePair makes two independent kit instances (own pool or client,
// own Service, own HTTP server) on one shared database.
type instancePair func(t *testing.T) (a, b storage.Store)

func sqlPair(open func(testing.TB) *sql.DB, d sqlstore.Dialect) instancePair {
	return func(t *testing.T) (storage.Store, storage.Store) {
		st := sqlInstances(t, open, d, 2)
		return st[0], st[1]
	}
}

// sqlInstances makes the stores of n independent kit instances (own pool
// each) on one shared database.
func sqlInstances(t *testing.T, open func(testing.TB) *sql.DB, d sqlstore.Dialect, n int) []storage.Store {
	prefix := testdb.Unique("mi")
	dbs := make([]*sql.DB, n)
	for i := range dbs {
		dbs[i] = open(t)
		// Bounded pools, as a deployment sets them: a burst of requests
		// waits for a connection instead of exhausting the server's. The
		// instances together hold at most 32, whatever n: the server's
		// connections (100 by default) are shared with other test packages
		// and whatever else runs on it.
		size := max(32/n, 2)
		dbs[i].SetMaxOpenConns(size)
		dbs[i].SetMaxIdleConns(size)
	}
	stores := make([]*sqlstore.Store, n)
	// All instances migrate at once, as pods starting together would.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, db := range dbs {
		s, err := sqlstore.New(db, d, sqlstore.Options{TablePrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Migrate(context.Background()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, table := range stores[0].Tables() {
			dbs[0].Exec("DROP TABLE IF EXISTS " + table)
		}
	})
	out := make([]storage.Store, n)
	for i, s := range stores {
		out[i] = s
	}
	return out
}

func sqlitePair(t *testing.T) (storage.Store, storage.Store) {
	path := filepath.Join(t.TempDir(), "shared.db")
	open := func(tb testing.TB) *sql.DB {
		db, err := sql.Open("sqlite", testdb.SQLiteDSN(path))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return db
	}
	return sqlPair(open, sqlstore.SQLite)(t)
}

// redisPair makes two instances, each with its own client, on the Redis
// of open: one server or a Redis Cluster.
func redisPair(open func(testing.TB) redis.UniversalClient) instancePair {
	return func(t *testing.T) (storage.Store, storage.Store) {
		prefix := testdb.Unique("mfakit-mi:")
		var out [2]storage.Store
		for i := range out {
			s, err := redisstore.New(open(t), redisstore.Options{KeyPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			out[i] = s
		}
		testdb.DeleteRedisKeys(t, open(t), prefix)
		return out[0], out[1]
	}
}

var pairs = []struct {
	name string
	pair instancePair
}{
	{"Postgres", sqlPair(testdb.Postgres, sqlstore.Postgres)},
	{"Redis", redisPair(testdb.Redis)},
	// Three masters (MFAKIT_REDIS_CLUSTER_ADDRS, .ci/redis-cluster): each
	// user's keys live in one slot, users spread over the nodes.
	{"RedisCluster", redisPair(func(t testing.TB) redis.UniversalClient { return testdb.RedisCluster(t) })},
	{"MySQL", sqlPair(testdb.MySQL, sqlstore.MySQL)},
	{"SQLite", sqlitePair},
}

// TestTwoInstances shows that S3 (a code is accepted once) and S8 (failures
// lock the factor) hold across two app instances sharing one store, under
// concurrent requests split between them.
func TestTwoInstances(t *testing.T) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			storeA, storeB := p.pair(t)
			keys := mfa.NewRandomKeyring() // the instances share their keys, as a deployment would
			var envs [2]*env
			for i, st := range []storage.Store{storeA, storeB} {
				svc, err := mfa.New(st, &mailertest.Recorder{}, keys, mfa.Config{Issuer: "Acme"})
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(httpx.New(svc, httpx.Bearer(newAuthz(time.Now)), httpx.Config{Clients: newAuthz(time.Now)}).Handler())
				t.Cleanup(srv.Close)
				envs[i] = &env{t: t, srv: srv, svc: svc, store: st, now: time.Now()}
			}
			a, b := envs[0], envs[1]
			realCode := func(uri string, offset int64) string {
				secret, params, err := mfa.ParseKeyURI(uri)
				if err != nil {
					t.Fatal(err)
				}
				return params.Code(secret, params.Step(time.Now())+offset)
			}
			// concurrently sends n requests, alternating instances, and counts statuses.
			concurrently := func(n int, req request) map[int]int {
				var mu sync.Mutex
				var wg sync.WaitGroup
				counts := map[int]int{}
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := envs[i%2].do(req)
						mu.Lock()
						counts[r.status]++
						mu.Unlock()
					}()
				}
				wg.Wait()
				return counts
			}

			// Enroll on A; 40 concurrent verifications of one code on A and B: one wins.
			r := a.do(request{method: "PUT", path: qrPath, token: "alice-token", accept: "application/json"})
			expect(t, r, 200, "")
			uri := jsonField(t, r.body, "otpauthUrl")
			code := realCode(uri, 0)
			counts := concurrently(40, request{method: "PUT", path: verifyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", code)})
			if counts[200] != 1 {
				t.Fatalf("S3: %d of 40 concurrent verifications succeeded across instances, want 1: %v", counts[200], counts)
			}
			// The status is the same on both instances.
			for _, e := range envs {
				r := e.do(request{method: "GET", path: detailsPath, token: "alice-token"})
				if got := jsonField(t, r.body, "details"); got != `{"AUTHENTICATOR":{"verified":true}}` {
					t.Fatalf("details = %s", got)
				}
			}

			// Losers that raced past the status read were replays, which count
			// as failures (S8) and may have locked alice: use another user for
			// 40 concurrent resets with one code. Exactly one is accepted.
			r = b.do(request{method: "PUT", path: qrPath, token: "admin-token", accept: "application/json"})
			adminURI := jsonField(t, r.body, "otpauthUrl")
			expect(t, a.do(request{method: "PUT", path: verifyPath, token: "admin-token", body: verifyBody("AUTHENTICATOR", realCode(adminURI, 0))}), 200, "")
			next := realCode(adminURI, 1)
			counts = concurrently(40, request{method: "POST", path: resetMyPath, token: "admin-token", body: verifyBody("AUTHENTICATOR", next)})
			if counts[200] != 1 {
				t.Fatalf("S3: %d of 40 concurrent resets with one code succeeded, want 1: %v", counts[200], counts)
			}

			// S8: bob's wrong codes, split between instances, lock him on both.
			r = b.do(request{method: "PUT", path: qrPath, token: "bob-token", accept: "application/json"})
			bobURI := jsonField(t, r.body, "otpauthUrl")
			expect(t, a.do(request{method: "PUT", path: verifyPath, token: "bob-token", body: verifyBody("AUTHENTICATOR", realCode(bobURI, 0))}), 200, "")
			bobSecret, bobParams, err := mfa.ParseKeyURI(bobURI)
			if err != nil {
				t.Fatal(err)
			}
			wrong := wrongCodeAt(bobSecret, bobParams, time.Now())
			counts = concurrently(20, request{method: "POST", path: resetMyPath, token: "bob-token", body: verifyBody("AUTHENTICATOR", wrong)})
			if counts[400] > 4 || counts[400]+counts[429] != 20 {
				t.Fatalf("S8: 20 concurrent wrong codes gave %v, want at most 4 plain failures before the lock", counts)
			}
			for _, e := range envs {
				expect(t, e.do(request{method: "POST", path: resetMyPath, token: "bob-token", body: verifyBody("AUTHENTICATOR", realCode(bobURI, 1))}), 429, "locked")
			}
			att, err := storeB.Attempts(context.Background(), "bob@example.com", mfa.Authenticator)
			if err != nil || att.Failures < 5 {
				t.Fatalf("shared failure count = %+v, %v", att, err)
			}
		})
	}
}

// TestThreeInstances: three kit instances (own pool, Service and HTTP
// server each) on one PostgreSQL database, with requests split between
// them. One code is accepted once (S3), wrong codes lock the factor on
// all three after at most MaxFailures were compared (S8, S22), and
// concurrent enrollEmail requests send one email (S9).
func TestThreeInstances(t *testing.T) {
	stores := sqlInstances(t, testdb.Postgres, sqlstore.Postgres, 3)
	kits := newKits(t, stores...)
	maxFailures := kits[0].svc.Config().MaxFailures
	// spread sends n requests at once, the i-th through kits[i%3], and
	// counts their statuses.
	spread := func(n int, send func(k *kit, i int) int) map[int]int {
		var mu sync.Mutex
		var wg sync.WaitGroup
		counts := map[int]int{}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status := send(kits[i%len(kits)], i)
				mu.Lock()
				counts[status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return counts
	}
	events := func(user string, f mfa.Factor, typ mfa.EventType) int {
		n := 0
		for _, k := range kits {
			n += k.events.Count(user, f, typ)
		}
		return n
	}
	verify := func(t *testing.T, k *kit, user, code string) int {
		return k.call(t, "PUT", "/oauth/users/mfa/verify", "u:"+user, jsonType, body(mfa.Authenticator, code))
	}

	t.Run("Replay", func(t *testing.T) {
		const user = "replay@example.com"
		secret, p := enrollDirect(t, kits[0].svc, user) // used the previous step
		code := p.Code(secret, p.Step(time.Now()))
		counts := spread(30, func(k *kit, _ int) int { return verify(t, k, user, code) })
		if counts[200] != 1 || counts[400]+counts[429] != 29 {
			t.Fatalf("S3: 30 concurrent verifications of one code through three instances gave %v, want one 200", counts)
		}
		if n := events(user, mfa.Authenticator, mfa.EventVerified); n != 1 {
			t.Fatalf("S3: %d verified events, want 1", n)
		}
	})

	t.Run("Lockout", func(t *testing.T) {
		const user = "lockout@example.com"
		secret, p := enrollDirect(t, kits[0].svc, user)
		wrong := wrongTOTP(secret, p)
		counts := spread(60, func(k *kit, i int) int { return verify(t, k, user, wrong(i)) })
		compared := events(user, mfa.Authenticator, mfa.EventFailure)
		t.Logf("%d codes compared, statuses %v", compared, counts)
		if compared == 0 || compared > maxFailures || counts[400]+counts[429] != 60 {
			t.Fatalf("S22: 60 wrong codes through three instances: %d compared (want 1 to %d), statuses %v",
				compared, maxFailures, counts)
		}
		a, err := stores[2].Attempts(context.Background(), user, mfa.Authenticator)
		if err != nil || a.Failures < maxFailures || !a.LockedUntil.After(time.Now()) {
			t.Fatalf("S8: shared failure state %+v, %v: want locked", a, err)
		}
		// The right code is refused on every instance.
		right := p.Code(secret, p.Step(time.Now()))
		for i, k := range kits {
			if status := verify(t, k, user, right); status != 429 {
				t.Fatalf("S8: instance %d answered the right code of a locked user with %d, want 429", i, status)
			}
		}
		if n := events(user, mfa.Authenticator, mfa.EventVerified); n != 0 {
			t.Fatalf("S8: a code was accepted while locked (%d verified events)", n)
		}
	})

	t.Run("EmailThrottle", func(t *testing.T) {
		const user = "throttle@example.com"
		counts := spread(30, func(k *kit, _ int) int {
			return k.call(t, "PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL", "u:"+user, "", "")
		})
		sent := 0
		for _, k := range kits {
			for _, m := range k.mail.Messages() {
				if m.To == user {
					sent++
				}
			}
		}
		if sent != 1 || counts[200] != 1 || counts[429] != 29 {
			t.Fatalf("S9: 30 concurrent enrollEmail through three instances sent %d emails, statuses %v; want one send", sent, counts)
		}
	})

	// S22 on every code-checking path, 90 wrong codes spread over the three.
	t.Run("Burst", func(t *testing.T) { burst(t, kits, stores[0], 90) })
}

func jsonField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var m map[string]jsonRaw
	if err := jsonUnmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	v, ok := m[field]
	if !ok {
		t.Fatalf("no %q in %s", field, body)
	}
	var s string
	if jsonUnmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

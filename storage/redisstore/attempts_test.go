package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
)

// eachStore runs test once per Redis deployment, as a subtest named after
// it: one server (MFAKIT_REDIS_ADDR) and a Redis Cluster
// (MFAKIT_REDIS_CLUSTER_ADDRS), each skipped when its variable is unset.
// The store has a fresh key prefix; its keys are deleted when the test
// ends.
func eachStore(t *testing.T, test func(t *testing.T, s *Store)) {
	for _, r := range []struct {
		name string
		open func(testing.TB) redis.UniversalClient
	}{
		{"Redis", testdb.Redis},
		{"Cluster", func(t testing.TB) redis.UniversalClient { return testdb.RedisCluster(t) }},
	} {
		t.Run(r.name, func(t *testing.T) {
			rdb := r.open(t)
			prefix := testdb.Unique("mfakit-test:")
			s, err := New(rdb, Options{KeyPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			testdb.DeleteRedisKeys(t, rdb, prefix)
			test(t, s)
		})
	}
}

// stored is a as the store keeps it: times at microsecond precision.
func stored(a storage.Attempts) storage.Attempts {
	a.LockedUntil = fromMicros(micros(a.LockedUntil))
	a.LastAt = fromMicros(micros(a.LastAt))
	return a
}

func sameAttempts(a, b storage.Attempts) bool {
	return a.Failures == b.Failures && a.LockedUntil.Equal(b.LockedUntil) && a.LastAt.Equal(b.LastAt)
}

// The Lua of reserveScript computes what storage.NextAttempt does, for
// policies whose Base and Max are not whole microseconds or whose Max is
// below Base too, and the lock saturates however long the count grows.
func TestReserveIsNextAttempt(t *testing.T) { eachStore(t, testReserveIsNextAttempt) }

func testReserveIsNextAttempt(t *testing.T, s *Store) {
	ctx := context.Background()
	policies := []storage.LockPolicy{
		{MaxFailures: 5, Base: time.Minute, Max: time.Hour},
		{MaxFailures: 1, Base: time.Millisecond, Max: 100 * 24 * time.Hour},
		{MaxFailures: 3, Base: 1500 * time.Nanosecond, Max: time.Second + 7},
		{MaxFailures: 2, Base: time.Second, Max: time.Second / 2},
		{MaxFailures: 2, Base: 0, Max: time.Hour},
		{MaxFailures: 2, Base: time.Second, Max: 0},
		{MaxFailures: 1, Base: 1, Max: 1 << 50},
	}
	base := time.Now().Truncate(time.Millisecond)
	for i, p := range policies {
		user := string(rune('a' + i))
		var want storage.Attempts
		now := base.Add(time.Duration(rand.IntN(1000)) * time.Nanosecond)
		for n := range 200 {
			// Mostly after the lock ends, sometimes within it.
			if rand.IntN(4) == 0 {
				now = now.Add(time.Duration(rand.IntN(1000)) * time.Microsecond)
			} else if want.LockedUntil.After(now) {
				now = want.LockedUntil.Add(time.Duration(rand.IntN(3)) * time.Nanosecond)
			}
			next, ok := storage.NextAttempt(want, now, p)
			got, err := s.ReserveAttempt(ctx, user, storage.Email, now, p)
			if ok != (err == nil) || (!ok && !errors.Is(err, storage.ErrLocked)) {
				t.Fatalf("policy %+v, reservation %d at %v: err %v, want reserved=%v", p, n, now, err, ok)
			}
			want = stored(next)
			if !sameAttempts(got, want) {
				t.Fatalf("policy %+v, reservation %d: got %+v, want %+v", p, n, got, want)
			}
		}
	}
}

// However large the count or Max, the lock saturates, within what Lua's
// doubles keep of microseconds past the year 2255 (2^53µs).
func TestReserveSaturates(t *testing.T) { eachStore(t, testReserveSaturates) }

func testReserveSaturates(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for i, p := range []storage.LockPolicy{
		{MaxFailures: 3, Base: time.Minute, Max: time.Hour},
		{MaxFailures: 3, Base: time.Nanosecond, Max: math.MaxInt64},
		{MaxFailures: 1, Base: 1 << 62, Max: math.MaxInt64},
	} {
		user := string(rune('a' + i))
		// A count no test could reach by reserving.
		if err := s.rdb.HSet(ctx, s.attemptsKey(user, storage.Email), "f", 1<<40).Err(); err != nil {
			t.Fatal(err)
		}
		want := storage.Attempts{Failures: 1 << 40}
		at := now
		for range 3 {
			next, _ := storage.NextAttempt(want, at, p)
			got, err := s.ReserveAttempt(ctx, user, storage.Email, at, p)
			if err != nil {
				t.Fatal(err)
			}
			if d := got.LockedUntil.Sub(next.LockedUntil).Abs(); d > 8*time.Microsecond || got.Failures != next.Failures {
				t.Fatalf("policy %+v: got %+v, want %+v", p, got, next)
			}
			want, at = got, got.LockedUntil
		}
	}
}

// A resent request (same request id) answers what the first one did and
// counts once, even if a success cleared the state in between.
func TestReserveResend(t *testing.T) { eachStore(t, testReserveResend) }

func testReserveResend(t *testing.T, s *Store) {
	ctx := context.Background()
	p := storage.LockPolicy{MaxFailures: 2, Base: time.Minute, Max: time.Hour}
	now := time.Now().Truncate(time.Millisecond)
	_, first, err := s.reserve(ctx, "u", storage.Email, now, p, "rq1", false)
	if err != nil {
		t.Fatal(err)
	}
	_, again, err := s.reserve(ctx, "u", storage.Email, now, p, "rq1", false)
	if err != nil || !sameAttempts(again, first) || first.Failures != 1 {
		t.Fatalf("resend answered %+v, %v; first %+v", again, err, first)
	}
	// The second reservation locks; its resend answers OK, not ErrLocked.
	_, locking, err := s.reserve(ctx, "u", storage.Email, now, p, "rq2", false)
	if err != nil || locking.Failures != 2 || !locking.LockedUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("second reservation %+v, %v", locking, err)
	}
	_, again, err = s.reserve(ctx, "u", storage.Email, now, p, "rq2", true)
	if err != nil && !errors.Is(err, storage.ErrNotFound) || !sameAttempts(again, locking) {
		t.Fatalf("resend of the locking reservation answered %+v, %v", again, err)
	}
	if _, err := s.ReserveAttempt(ctx, "u", storage.Email, now, p); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("new reservation while locked: %v", err)
	}
	// A reset in between does not let the resend count again.
	if err := s.ResetAttempts(ctx, "u", storage.Email); err != nil {
		t.Fatal(err)
	}
	if _, again, err = s.reserve(ctx, "u", storage.Email, now, p, "rq2", false); err != nil || !sameAttempts(again, locking) {
		t.Fatalf("resend after reset answered %+v, %v", again, err)
	}
	if a, err := s.Attempts(ctx, "u", storage.Email); err != nil || a != (storage.Attempts{}) {
		t.Fatalf("resend after reset counted: %+v, %v", a, err)
	}
}

// Failure state expires AttemptIdle after max(LockedUntil, now) (S27);
// a locked answer leaves it alone.
func TestAttemptsExpire(t *testing.T) { eachStore(t, testAttemptsExpire) }

func testAttemptsExpire(t *testing.T, s *Store) {
	ctx := context.Background()
	p := storage.LockPolicy{MaxFailures: 2, Base: time.Hour, Max: 4 * time.Hour}
	now := time.Now().Truncate(time.Millisecond)
	pttl := func() time.Duration {
		t.Helper()
		d, err := s.rdb.PTTL(ctx, s.attemptsKey("u", storage.Authenticator)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	near := func(got, want time.Duration) bool { return got <= want && got > want-time.Minute }
	if _, err := s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p); err != nil {
		t.Fatal(err)
	}
	if d := pttl(); !near(d, storage.AttemptIdle) {
		t.Fatalf("TTL %v after one reservation, want %v", d, storage.AttemptIdle)
	}
	if _, err := s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p); err != nil {
		t.Fatal(err)
	}
	if d := pttl(); !near(d, storage.AttemptIdle+time.Hour) {
		t.Fatalf("TTL %v after a one-hour lock, want %v", d, storage.AttemptIdle+time.Hour)
	}
	if err := s.rdb.PExpire(ctx, s.attemptsKey("u", storage.Authenticator), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("reservation while locked: %v", err)
	}
	if d := pttl(); !near(d, time.Hour) {
		t.Fatalf("a locked answer changed the TTL to %v", d)
	}
}

// AcceptStep clears the failure state in the same script; its resend
// does not clear checks reserved after the original.
func TestAcceptStepResendKeepsLaterChecks(t *testing.T) {
	eachStore(t, testAcceptStepResendKeepsLaterChecks)
}

func testAcceptStepResendKeepsLaterChecks(t *testing.T, s *Store) {
	ctx := context.Background()
	p := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
	now := time.Now().Truncate(time.Millisecond)
	e := storage.Enrollment{User: "u", Factor: storage.Authenticator, ID: "i", Secret: []byte("s"), KeyID: "k",
		CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.BeginEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmEnrollment(ctx, "u", storage.Authenticator, "i", 1, now); err != nil {
		t.Fatal(err)
	}
	accept := func(step int64, rq string) error {
		return s.acceptStep(ctx, "u", storage.Authenticator, step, rq)
	}
	if _, err := s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p); err != nil {
		t.Fatal(err)
	}
	if err := accept(2, "rq"); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Attempts(ctx, "u", storage.Authenticator); a != (storage.Attempts{}) {
		t.Fatalf("AcceptStep left %+v", a)
	}
	if _, err := s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p); err != nil {
		t.Fatal(err)
	}
	if err := accept(2, "rq"); err != nil {
		t.Fatalf("resend: %v", err)
	}
	if a, _ := s.Attempts(ctx, "u", storage.Authenticator); a.Failures != 1 {
		t.Fatalf("the resend cleared a later check: %+v", a)
	}
}

// Every key one script touches carries the same hash tag, so the script
// runs on one Redis Cluster slot.
func TestScriptKeysShareSlot(t *testing.T) {
	// tag is what Redis Cluster hashes: the part between the first '{' and
	// the next '}', if not empty; else the whole key.
	tag := func(key string) string {
		if i := strings.IndexByte(key, '{'); i >= 0 {
			if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
				return key[i+1 : i+1+j]
			}
		}
		return key
	}
	// The empty user (which mfa.Service refuses) has an empty tag, so its
	// keys hash whole and only work on a single Redis.
	for _, prefix := range []string{"mfakit:", "p:{x}:"} {
		s := &Store{prefix: prefix}
		for _, user := range []string{"alice", "a}b{c", "{}"} {
			keys := []string{s.attemptsKey(user, storage.Email), s.requestKey(user, "rq"),
				s.enrollmentKey(user, storage.Email), s.recoveryKey(user), s.codeKey(user, "p")}
			for _, k := range keys[1:] {
				if tag(k) != tag(keys[0]) {
					t.Errorf("%q and %q have different hash tags", k, keys[0])
				}
			}
		}
	}
}

// On a live Redis Cluster the keys of one user share a slot (as Redis
// computes it), and users spread over the masters, so the cluster tests
// run scripts on more than one node.
func TestClusterSlots(t *testing.T) {
	rdb := testdb.RedisCluster(t)
	ctx := context.Background()
	s := &Store{prefix: testdb.Unique("mfakit-test:")}
	masters := map[string]bool{}
	for i := range 30 {
		user := fmt.Sprintf("user-%d@example.com", i)
		keys := []string{s.attemptsKey(user, storage.Email), s.requestKey(user, "rq"), s.enrollmentKey(user, storage.Email),
			s.recoveryKey(user), s.codeKey(user, "p"), s.codeIndexKey(user)}
		slot, err := rdb.ClusterKeySlot(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[1:] {
			if got, err := rdb.ClusterKeySlot(ctx, k).Result(); err != nil || got != slot {
				t.Fatalf("%q is in slot %d (%v), %q in %d", k, got, err, keys[0], slot)
			}
		}
		node, err := rdb.MasterForKey(ctx, keys[0])
		if err != nil {
			t.Fatal(err)
		}
		masters[node.Options().Addr] = true
	}
	if len(masters) < 2 {
		t.Fatalf("30 users all live on %v: the cluster tests would not cross nodes", masters)
	}
}

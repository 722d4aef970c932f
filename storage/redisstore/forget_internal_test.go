package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
)

// userKeys lists the keys of user under s, request markers left out.
func userKeys(t *testing.T, s *Store, user string) []string {
	t.Helper()
	var out []string
	pattern := strings.TrimSuffix(s.userKey(user, "", ""), "::") + "*" // every kind of record of user
	for _, k := range testdb.RedisKeys(t, s.rdb, pattern) {
		if !strings.Contains(k, "}:r:") {
			out = append(out, k)
		}
	}
	return out
}

// TestForgetLeavesNoKey: after ForgetUser no key of the user is left but
// the minute-long request markers.
func TestForgetLeavesNoKey(t *testing.T) { eachStore(t, testForgetLeavesNoKey) }

func testForgetLeavesNoKey(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now()
	const u = "forget-keys"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.BeginEnrollment(ctx, storage.Enrollment{User: u, Factor: storage.Authenticator, ID: "i", Secret: []byte("s"),
		KeyID: "k", CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	must(s.BeginEnrollment(ctx, storage.Enrollment{User: u, Factor: storage.Email, ID: "j", KeyID: "k",
		CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	for _, p := range []string{"login", "login-email", "enroll-email", "other"} {
		must(s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: []byte("h"), ExpiresAt: now.Add(time.Minute)}))
	}
	must(s.ConsumeCode(ctx, u, "other", []byte("h"), now)) // leaves a tombstone
	lp := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
	for _, f := range []storage.Factor{storage.Authenticator, storage.Email, storage.Recovery} {
		if _, err := s.ReserveAttempt(ctx, u, f, now, lp); err != nil {
			t.Fatal(err)
		}
	}
	must(s.ReplaceRecoveryCodes(ctx, u, [][]byte{[]byte("r1"), []byte("r2")}))
	if keys := userKeys(t, s, u); len(keys) != 2+4+1+3+1 {
		t.Fatalf("before ForgetUser: %d keys %v, want 11", len(keys), keys)
	}
	must(s.ForgetUser(ctx, u, nil))
	if keys := userKeys(t, s, u); len(keys) != 0 {
		t.Fatalf("after ForgetUser: keys %v are left", keys)
	}
}

// TestCodeIndexTTL: the code index lives as long as the longest-lived
// code it lists.
func TestCodeIndexTTL(t *testing.T) { eachStore(t, testCodeIndexTTL) }

func testCodeIndexTTL(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now()
	const u = "index-ttl"
	put := func(p string, exp time.Time) {
		t.Helper()
		if err := s.PutCode(ctx, storage.Code{User: u, Purpose: p, Hash: []byte("h"), ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	put("long", now.Add(3*time.Hour))
	put("short", now.Add(time.Minute))
	codeTTL := s.rdb.PTTL(ctx, s.codeKey(u, "long")).Val()
	indexTTL := s.rdb.PTTL(ctx, s.codeIndexKey(u)).Val()
	if indexTTL < codeTTL-time.Second {
		t.Fatalf("index TTL %v is shorter than the TTL %v of a code it lists", indexTTL, codeTTL)
	}
}

// TestForgetScriptRetries: if the index changed since the caller read it,
// the script deletes nothing and asks for a retry.
func TestForgetScriptRetries(t *testing.T) { eachStore(t, testForgetScriptRetries) }

func testForgetScriptRetries(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now()
	const u = "forget-race"
	if err := s.PutCode(ctx, storage.Code{User: u, Purpose: "a", Hash: []byte("h"), ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	members := s.rdb.SMembers(ctx, s.codeIndexKey(u)).Val()
	// A code of a new purpose lands between the read and the script.
	if err := s.PutCode(ctx, storage.Code{User: u, Purpose: "b", Hash: []byte("h"), ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	keys := []string{s.codeIndexKey(u)}
	args := []any{}
	for _, m := range members {
		keys = append(keys, s.userKey(u, "c", m))
		args = append(args, m)
	}
	res, err := forgetScript.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil || res != "RETRY" {
		t.Fatalf("stale index: %v, %v, want RETRY", res, err)
	}
	if n := len(userKeys(t, s, u)); n != 3 {
		t.Fatalf("a refused script deleted keys: %d left, want 3", n)
	}
	if err := s.ForgetUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	if keys := userKeys(t, s, u); len(keys) != 0 {
		t.Fatalf("keys %v are left", keys)
	}
}

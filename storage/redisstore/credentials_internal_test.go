package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
)

// The steps of the claim protocol (credentials.go), one at a time, in the
// orders that concurrent calls and failures produce.

func mustCred(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testCredential(user, id string) storage.Credential {
	return storage.Credential{User: user, ID: []byte(id), Name: "n", Data: []byte("d"), SignCount: 1,
		CreatedAt: time.Now().Truncate(time.Microsecond)}
}

// claimOf returns the value of the claim of id ("" when there is none).
func claimOf(t *testing.T, s *Store, id []byte) string {
	t.Helper()
	v, err := s.rdb.Get(context.Background(), s.claimKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	mustCred(t, err)
	return v
}

// genOf returns the generation the user holds id under ("" when none).
func genOf(t *testing.T, s *Store, user string, id []byte) string {
	t.Helper()
	g, err := s.rdb.HGet(context.Background(), s.credentialsKey(user), "g"+string(id)).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	mustCred(t, err)
	return g
}

// consistent checks the invariant: a credential of user is stored only
// while the claim of its ID names user, under the same generation.
func consistent(t *testing.T, s *Store, user string, id []byte) {
	t.Helper()
	if g := genOf(t, s, user, id); g != "" && claimOf(t, s, id) != owner(user)+g {
		t.Fatalf("%s holds %q under %s but the claim is %q", user, id, g, claimOf(t, s, id))
	}
}

func addStep(t *testing.T, s *Store, c storage.Credential, gen string) []any {
	t.Helper()
	vals, err := addCredentialScript.Run(context.Background(), s.rdb, []string{s.credentialsKey(c.User), s.fenceKey(c.User)},
		c.ID, gen, c.Name, c.Data, c.SignCount, micros(c.CreatedAt), micros(c.LastUsedAt)).Slice()
	mustCred(t, err)
	return vals
}

func claimStep(t *testing.T, s *Store, user string, id []byte, gen string) any {
	t.Helper()
	res, err := claimScript.Run(context.Background(), s.rdb, []string{s.claimKey(id)}, owner(user), owner(user)+gen).Result()
	mustCred(t, err)
	return res
}

// An AddCredential whose second step failed after the claim: the claim
// blocks other users only; the owner may add the ID, or free it with
// DeleteCredential.
func TestCredentialOrphanClaim(t *testing.T) { eachStore(t, testCredentialOrphanClaim) }

func testCredentialOrphanClaim(t *testing.T, s *Store) {
	ctx := context.Background()
	c := testCredential("orphan-owner", "orphan-id")
	if res := claimStep(t, s, c.User, c.ID, "G1"); res != "OK" {
		t.Fatalf("claim = %v", res)
	}
	other := c
	other.User = "orphan-other"
	if err := s.AddCredential(ctx, other); !errors.Is(err, storage.ErrCredentialExists) {
		t.Fatalf("another user's AddCredential of a claimed ID = %v", err)
	}
	mustCred(t, s.AddCredential(ctx, c))
	consistent(t, s, c.User, c.ID)
	if ok, err := s.DeleteCredential(ctx, c.User, c.ID); err != nil || !ok {
		t.Fatalf("DeleteCredential = %v, %v", ok, err)
	}
	if v := claimOf(t, s, c.ID); v != "" {
		t.Fatalf("the claim %q outlived the credential", v)
	}

	// An orphan again; DeleteCredential of the missing credential frees it.
	claimStep(t, s, c.User, c.ID, "G2")
	if ok, err := s.DeleteCredential(ctx, c.User, c.ID); err != nil || ok {
		t.Fatalf("DeleteCredential of an orphan claim = %v, %v", ok, err)
	}
	if v := claimOf(t, s, c.ID); v != "" {
		t.Fatalf("DeleteCredential left the orphan claim %q", v)
	}
	mustCred(t, s.AddCredential(ctx, other))
	consistent(t, s, other.User, other.ID)
	// Another user's DeleteCredential leaves the claim alone.
	if ok, err := s.DeleteCredential(ctx, c.User, c.ID); err != nil || ok {
		t.Fatalf("DeleteCredential by a user not the owner = %v, %v", ok, err)
	}
	consistent(t, s, other.User, other.ID)
	if genOf(t, s, other.User, other.ID) == "" {
		t.Fatal("another user's DeleteCredential removed the credential")
	}
}

// release finds an add whose reply was lost (it landed) and keeps the
// claim; otherwise it fences the generation, so the add arriving late is
// refused, and deletes the claim.
func TestCredentialRelease(t *testing.T) { eachStore(t, testCredentialRelease) }

func testCredentialRelease(t *testing.T, s *Store) {
	ctx := context.Background()
	c := testCredential("release-u", "release-id")
	claimStep(t, s, c.User, c.ID, "G1")
	if vals := addStep(t, s, c, "G1"); str(vals, 0) != "OK" {
		t.Fatalf("add = %v", vals)
	}
	if vals := addStep(t, s, c, "G1"); str(vals, 0) != "OK" { // a resend
		t.Fatalf("resent add = %v", vals)
	}
	landed, err := s.release(ctx, c.User, c.ID, "G1")
	if err != nil || !landed {
		t.Fatalf("release of a landed add = %v, %v", landed, err)
	}
	consistent(t, s, c.User, c.ID)

	d := testCredential("release-u", "release-late")
	claimStep(t, s, d.User, d.ID, "G2")
	landed, err = s.release(ctx, d.User, d.ID, "G2")
	if err != nil || landed {
		t.Fatalf("release of an add that did not land = %v, %v", landed, err)
	}
	if v := claimOf(t, s, d.ID); v != "" {
		t.Fatalf("release left the claim %q", v)
	}
	if vals := addStep(t, s, d, "G2"); str(vals, 0) != "FENCED" {
		t.Fatalf("an add arriving after its release = %v, want FENCED", vals)
	}
	if g := genOf(t, s, d.User, d.ID); g != "" {
		t.Fatalf("a fenced add stored the credential under %s", g)
	}
	if ttl := s.rdb.PTTL(ctx, s.fenceKey(d.User)).Val(); ttl <= 0 || ttl > fenceTTL {
		t.Fatalf("fence TTL %v, want at most %v", ttl, fenceTTL)
	}
	// Releasing a generation the user does not hold the ID under puts the
	// claim back to the one it does.
	claimStep(t, s, c.User, c.ID, "G3")
	landed, err = s.release(ctx, c.User, c.ID, "G3")
	if err != nil || landed {
		t.Fatalf("release of a generation not held = %v, %v", landed, err)
	}
	consistent(t, s, c.User, c.ID)
}

// A second add of an ID the user holds (a new generation claimed) puts
// the claim's earlier generation back; a delete racing it, in either
// order, leaves claim and credential consistent.
func TestCredentialSameUserRaces(t *testing.T) { eachStore(t, testCredentialSameUserRaces) }

func testCredentialSameUserRaces(t *testing.T, s *Store) {
	ctx := context.Background()
	c := testCredential("same-u", "same-id")
	mustCred(t, s.AddCredential(ctx, c))
	if err := s.AddCredential(ctx, c); !errors.Is(err, storage.ErrCredentialExists) {
		t.Fatalf("second AddCredential = %v", err)
	}
	consistent(t, s, c.User, c.ID)

	// Add claims G2; delete removes the credential and frees what it
	// fenced (not G2); the add lands.
	claimStep(t, s, c.User, c.ID, "G2")
	if ok, err := s.DeleteCredential(ctx, c.User, c.ID); err != nil || !ok {
		t.Fatalf("DeleteCredential = %v, %v", ok, err)
	}
	if v := claimOf(t, s, c.ID); v != owner(c.User)+"G2" {
		t.Fatalf("the delete freed the claim of a pending add: %q", v)
	}
	if vals := addStep(t, s, c, "G2"); str(vals, 0) != "OK" {
		t.Fatalf("add = %v", vals)
	}
	consistent(t, s, c.User, c.ID)

	// Add claims G3, meets the credential (EXISTS), and a delete runs
	// before it puts the claim back: the ID stays claimed, never free
	// while held.
	claimStep(t, s, c.User, c.ID, "G3")
	vals := addStep(t, s, c, "G3")
	if str(vals, 0) != "EXISTS" || str(vals, 1) != "G2" {
		t.Fatalf("add = %v, want EXISTS G2", vals)
	}
	if ok, err := s.DeleteCredential(ctx, c.User, c.ID); err != nil || !ok {
		t.Fatalf("DeleteCredential = %v, %v", ok, err)
	}
	swapClaimScript.Run(ctx, s.rdb, []string{s.claimKey(c.ID)}, owner(c.User)+"G3", owner(c.User)+"G2")
	consistent(t, s, c.User, c.ID)
}

// ForgetUser frees the claims in a second step; if that step does not
// run, the fences keep the IDs (without a TTL) and the next ForgetUser
// frees them.
func TestCredentialForgetFreesLater(t *testing.T) { eachStore(t, testCredentialForgetFreesLater) }

func testCredentialForgetFreesLater(t *testing.T, s *Store) {
	ctx := context.Background()
	const u = "forget-cred"
	ids := []string{"fc-1", "fc-2", strings.Repeat("\xff", storage.MaxCredentialIDLen)}
	for _, id := range ids {
		mustCred(t, s.AddCredential(ctx, testCredential(u, id)))
	}
	mustCred(t, s.forgetRecords(ctx, u)) // the first step only
	if got, err := s.Credentials(ctx, u); err != nil || len(got) != 0 {
		t.Fatalf("Credentials after the first step = %v, %v", got, err)
	}
	for _, id := range ids {
		if v := claimOf(t, s, []byte(id)); !strings.HasPrefix(v, owner(u)) {
			t.Fatalf("the claim of %q is %q before the second step", id, v)
		}
		if err := s.AddCredential(ctx, testCredential("forget-cred-other", id)); !errors.Is(err, storage.ErrCredentialExists) {
			t.Fatalf("another user's AddCredential before the claims were freed = %v", err)
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.fenceKey(u)).Val(); ttl != -1 {
		t.Fatalf("fences of claims not freed have TTL %v", ttl)
	}
	mustCred(t, s.ForgetUser(ctx, u, nil))
	for _, id := range ids {
		if v := claimOf(t, s, []byte(id)); v != "" {
			t.Fatalf("the claim of %q is %q after ForgetUser", id, v)
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.fenceKey(u)).Val(); ttl <= 0 || ttl > fenceTTL {
		t.Fatalf("fence TTL %v after the claims were freed, want at most %v", ttl, fenceTTL)
	}
	// Nothing of the user is left but the fence, for a minute.
	for _, k := range userKeys(t, s, u) {
		if k != s.fenceKey(u) {
			t.Fatalf("key %q left after ForgetUser", k)
		}
	}
	mustCred(t, s.AddCredential(ctx, testCredential("forget-cred-other", ids[0])))
}

// A resent UseCredential (the reply lost) answers OK and applies once.
func TestUseCredentialResend(t *testing.T) { eachStore(t, testUseCredentialResend) }

func testUseCredentialResend(t *testing.T, s *Store) {
	ctx := context.Background()
	c := testCredential("use-resend", "use-resend-id")
	mustCred(t, s.AddCredential(ctx, c))
	use := func(count uint32, rq string) any {
		t.Helper()
		res, err := useCredentialScript.Run(ctx, s.rdb, []string{s.credentialsKey(c.User)}, c.ID, count, "data", 1, rq).Result()
		mustCred(t, err)
		return res
	}
	for _, want := range []any{"OK", "OK"} {
		if got := use(5, "rq1"); got != want {
			t.Fatalf("use = %v, want %v", got, want)
		}
	}
	if got := use(5, "rq2"); got != "SIGNCOUNT" {
		t.Fatalf("another request with the same count = %v, want SIGNCOUNT", got)
	}
}

// The credentials and the fence share the user's slot; claims hash on the
// ID alone.
func TestCredentialKeySlots(t *testing.T) {
	for _, prefix := range []string{"mfakit:", "p:{x}:"} {
		s := &Store{prefix: prefix}
		for _, user := range []string{"alice", "a}b{c"} {
			for _, k := range []string{s.credentialsKey(user), s.fenceKey(user)} {
				if tag(k) != tag(s.recoveryKey(user)) {
					t.Errorf("%q is not in the slot of %q", k, s.recoveryKey(user))
				}
			}
		}
		id := []byte("}{id")
		if got, want := tag(s.claimKey(id)), b64.EncodeToString(id); prefix == "mfakit:" && got != want {
			t.Errorf("claim key %q hashes on %q, want %q", s.claimKey(id), got, want)
		}
	}
}

// tag is what Redis Cluster hashes: the part between the first '{' and
// the next '}', if not empty; else the whole key.
func tag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

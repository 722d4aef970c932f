package redisstore

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mfakit/mfakit/storage"
)

// The hot path builds the keys userKey does, byte for byte, whatever the
// user: a store reads what its previous version wrote.
func TestArgsKeysAreUserKeys(t *testing.T) {
	s := &Store{prefix: "mfakit:"}
	users := []string{"", "a", "ab", "abc", "alice@example.com", "{}", "a}b{c", "\x00\xff\xfe", strings.Repeat("é", 160)}
	for range 200 {
		b := make([]byte, rand.IntN(40))
		for i := range b {
			b[i] = byte(rand.IntN(256))
		}
		users = append(users, string(b))
	}
	for _, user := range users {
		var a args
		a.key(s.prefix, user, "e", string(storage.Email))
		a.key(s.prefix, user, "a", string(storage.Authenticator))
		from, to := a.requestKey(s.prefix, user)
		a.int(-42)
		a.str("x y")
		cmd := a.command(acceptScript, false)
		want := []string{s.enrollmentKey(user, storage.Email), s.attemptsKey(user, storage.Authenticator), "", "-42", "x y"}
		all := a.b.String()
		want[2] = s.requestKey(user, all[from:to])
		if len(cmd) != 3+len(want) || cmd[0] != "evalsha" || *cmd[1].(*string) != acceptScript.sha || *cmd[2].(*string) != "3" {
			t.Fatalf("user %q: command %v", user, cmd)
		}
		for i, w := range want {
			if got := *cmd[3+i].(*string); got != w {
				t.Fatalf("user %q: argument %d is %q, want %q", user, i, got, w)
			}
		}
		if got := a.keys; got != 3 {
			t.Fatalf("%d keys", got)
		}
		if n := s.keyLen(user, len(storage.Authenticator)); n < len(want[1]) {
			t.Fatalf("keyLen %d < %d", n, len(want[1]))
		}
	}
}

// Request ids are distinct.
func TestRequestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		var a args
		a.requestID()
		id := a.b.String()
		if seen[id] || !strings.HasPrefix(id, requestPrefix) || len(requestPrefix) != 16 || len(id) > maxRequestID {
			t.Fatalf("request id %q (prefix %q) repeated or malformed", id, requestPrefix)
		}
		seen[id] = true
	}
}

// A reply's words are read in turn; a word that is no number is refused
// as one.
func TestReply(t *testing.T) {
	r := reply{s: "OK 12 -3 0"}
	if w, n1, n2, n3 := r.word(), r.num(), r.num(), r.num(); w != "OK" || n1 != 12 || n2 != -3 || n3 != 0 || r.bad || r.more() {
		t.Fatalf("words %q %d %d %d (bad %v, left %q)", w, n1, n2, n3, r.bad, r.s)
	}
	if r := (reply{s: "OK x"}); r.word() != "OK" || r.num() != 0 || !r.bad {
		t.Error("a word that is no number read as one")
	}
}

package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// credentialRacers is how many goroutines the credential races run.
const credentialRacers = 20

// credential returns a credential of user with id, registered at created.
func credential(user string, id []byte, created time.Time) storage.Credential {
	return storage.Credential{User: user, ID: id, Name: fmt.Sprintf("key %x", id[len(id)-1:]),
		Data: append([]byte{0x00, 0xff, 0x7f}, id...), SignCount: 7, CreatedAt: created}
}

// sameCredential reports a difference between got and want, times at
// microsecond precision.
func sameCredential(t *testing.T, what string, got, want storage.Credential) {
	t.Helper()
	if got.User != want.User || !bytes.Equal(got.ID, want.ID) || got.Name != want.Name ||
		!bytes.Equal(got.Data, want.Data) || got.SignCount != want.SignCount ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.LastUsedAt, want.LastUsedAt) {
		t.Fatalf("%s: credential =\n  %+v\nwant\n  %+v", what, got, want)
	}
}

// expectCredentials checks that user holds exactly want, in that order.
func expectCredentials(t *testing.T, cs storage.CredentialStore, user string, want ...storage.Credential) {
	t.Helper()
	got, err := cs.Credentials(context.Background(), user)
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("Credentials(%q) = %d credentials %+v, want %d", user, len(got), got, len(want))
	}
	for i := range got {
		sameCredential(t, fmt.Sprintf("Credentials(%q)[%d]", user, i), got[i], want[i])
	}
}

// testCredentials runs on every store that implements CredentialStore.
func testCredentials(t *testing.T, newStore NewStore) {
	s := newStore(t)
	cs, ok := s.(storage.CredentialStore)
	if !ok {
		t.Skip("the store keeps no WebAuthn credentials (no storage.CredentialStore)")
	}
	t.Run("RoundTrip", func(t *testing.T) { testCredentialRoundTrip(t, cs) })
	t.Run("Duplicate", func(t *testing.T) { testCredentialDuplicate(t, cs) })
	t.Run("UseCredential", func(t *testing.T) { testUseCredential(t, cs) })
	t.Run("Delete", func(t *testing.T) { testDeleteCredential(t, cs) })
	t.Run("Limits", func(t *testing.T) { testCredentialLimits(t, cs) })
	t.Run("Cancelled", func(t *testing.T) { testCredentialCancelled(t, cs) })
	t.Run("ConcurrentAdd", func(t *testing.T) { testCredentialAddRace(t, cs) })
	t.Run("ConcurrentUse", func(t *testing.T) { testCredentialUseRace(t, cs) })
}

// testCredentialRoundTrip: every field comes back, times at the µs, in
// CreatedAt then ID order; IDs that are prefixes of each other, or differ
// in case or in a zero byte, are distinct.
func testCredentialRoundTrip(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	const u, other = "cred-rt", "cred-rt-2"
	expectCredentials(t, cs, u)
	at := func(sec, micro int) time.Time {
		return base.Add(time.Duration(sec)*time.Second + time.Duration(micro)*time.Microsecond)
	}
	c1 := credential(u, []byte{0x02, 0x00, 'a'}, at(2, 123))
	c1.LastUsedAt = at(3, 456)
	c2 := credential(u, []byte{0x02, 0x00}, at(1, 1)) // a prefix of c1's ID
	c2.Name, c2.SignCount = "Téléphone 📱", 0
	c3 := credential(u, []byte{0x01, 0xff, 'a'}, at(2, 123)) // same CreatedAt as c1, lower ID
	c3.Data = nil
	c4 := credential(u, []byte{0x01, 0xff, 'A'}, at(2, 123)) // differs from c3 in case only
	c4.SignCount = 1<<32 - 1
	c5 := credential(other, []byte{0x02, 0x00, 'a', 0x00}, at(0, 0))
	for _, c := range []storage.Credential{c1, c2, c3, c4, c5} {
		must(t, cs.AddCredential(ctx, c))
	}
	expectCredentials(t, cs, u, c2, c4, c3, c1)
	expectCredentials(t, cs, other, c5)
	expectCredentials(t, cs, "cred-rt-nobody")
	// The store keeps its own copy.
	c1.Data[0] = 0x55
	got, err := cs.Credentials(ctx, u)
	must(t, err)
	if got[3].Data[0] != 0x00 {
		t.Fatal("the store's credential changed with the caller's Data")
	}
}

// testCredentialDuplicate: an ID is registered once, across users, and a
// refused registration changes nothing.
func testCredentialDuplicate(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	const u, other = "cred-dup", "cred-dup-other"
	c := credential(u, []byte("dup-id"), base)
	must(t, cs.AddCredential(ctx, c))
	again := c
	again.Name, again.Data, again.SignCount, again.CreatedAt = "again", []byte("other data"), 99, base.Add(time.Hour)
	wantErr(t, cs.AddCredential(ctx, again), storage.ErrCredentialExists)
	again.User = other
	wantErr(t, cs.AddCredential(ctx, again), storage.ErrCredentialExists)
	expectCredentials(t, cs, u, c)
	expectCredentials(t, cs, other)
	// The other user cannot use or delete it either.
	wantErr(t, cs.UseCredential(ctx, other, c.ID, 100, []byte("x"), base), storage.ErrNotFound)
	if ok, err := cs.DeleteCredential(ctx, other, c.ID); err != nil || ok {
		t.Fatalf("DeleteCredential of another user's credential = %v, %v", ok, err)
	}
	expectCredentials(t, cs, u, c)
}

// testUseCredential: the sign count must advance unless both counts are
// 0; a refused use changes nothing; a use changes Data, SignCount and
// LastUsedAt.
func testUseCredential(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	const u, other = "cred-use", "cred-use-other"
	c := credential(u, []byte("use-counting"), base)
	c.SignCount = 10
	zero := credential(u, []byte("use-zero"), base.Add(time.Second))
	zero.SignCount = 0
	theirs := credential(other, []byte("use-theirs"), base)
	for _, x := range []storage.Credential{c, zero, theirs} {
		must(t, cs.AddCredential(ctx, x))
	}
	step := 0
	use := func(x *storage.Credential, count uint32, want error) {
		t.Helper()
		step++
		at := x.CreatedAt.Add(time.Duration(step)*time.Second + 789*time.Microsecond)
		data := []byte(fmt.Sprintf("data after %d", count))
		err := cs.UseCredential(ctx, x.User, x.ID, count, data, at)
		if want == nil {
			must(t, err)
			x.SignCount, x.Data, x.LastUsedAt = count, data, at
		} else if !errors.Is(err, want) {
			t.Fatalf("UseCredential(%q, count %d) after %d = %v, want %v", x.ID, count, x.SignCount, err, want)
		}
		expectCredentials(t, cs, u, c, zero)
	}
	use(&c, 11, nil)
	use(&c, 11, storage.ErrSignCount) // equal
	use(&c, 5, storage.ErrSignCount)  // lower
	use(&c, 0, storage.ErrSignCount)  // a counter that went back to 0
	use(&c, 12, nil)
	use(&c, 1<<32-1, nil) // the largest counter
	use(&c, 1<<32-1, storage.ErrSignCount)

	use(&zero, 0, nil) // authenticators without a counter
	use(&zero, 0, nil)
	use(&zero, 5, nil) // one that starts counting
	use(&zero, 0, storage.ErrSignCount)
	use(&zero, 5, storage.ErrSignCount)

	wantErr(t, cs.UseCredential(ctx, u, []byte("use-unknown"), 1, nil, base), storage.ErrNotFound)
	wantErr(t, cs.UseCredential(ctx, u, theirs.ID, 100, nil, base), storage.ErrNotFound)
	wantErr(t, cs.UseCredential(ctx, "cred-use-nobody", c.ID, 1<<31, nil, base), storage.ErrNotFound)
	expectCredentials(t, cs, other, theirs)
}

// testDeleteCredential: delete reports whether the credential existed,
// touches no other, and frees its ID.
func testDeleteCredential(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	const u, other = "cred-del", "cred-del-other"
	a := credential(u, []byte("del-a"), base)
	b := credential(u, []byte("del-b"), base.Add(time.Second))
	theirs := credential(other, []byte("del-theirs"), base)
	for _, x := range []storage.Credential{a, b, theirs} {
		must(t, cs.AddCredential(ctx, x))
	}
	del := func(user string, id []byte, want bool) {
		t.Helper()
		ok, err := cs.DeleteCredential(ctx, user, id)
		must(t, err)
		if ok != want {
			t.Fatalf("DeleteCredential(%q, %q) = %v, want %v", user, id, ok, want)
		}
	}
	del(u, a.ID, true)
	expectCredentials(t, cs, u, b)
	del(u, a.ID, false)
	del(u, []byte("del-a-missing"), false)
	del(u, theirs.ID, false)
	del("cred-del-nobody", b.ID, false)
	expectCredentials(t, cs, u, b)
	expectCredentials(t, cs, other, theirs)
	wantErr(t, cs.UseCredential(ctx, u, a.ID, 100, nil, base), storage.ErrNotFound)
	// The ID is free again, for another user too.
	a.User, a.CreatedAt = other, base.Add(time.Hour)
	must(t, cs.AddCredential(ctx, a))
	expectCredentials(t, cs, other, theirs, a)
	del(other, a.ID, true)
	del(u, b.ID, true)
	expectCredentials(t, cs, u)
}

// testCredentialLimits stores values at every size limit; IDs at the
// longest that differ only in their last byte, or their first, are
// distinct.
func testCredentialLimits(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	users := []string{strings.Repeat("u", storage.MaxUserLen), "ユーザー@例え.jp", "quote'\"`; DROP TABLE x;--"}
	long := func(seed byte, last byte) []byte {
		id := make([]byte, storage.MaxCredentialIDLen)
		for i := range id {
			id[i] = byte(i*7) ^ seed
		}
		id[len(id)-1] = last
		return id
	}
	name := strings.Repeat("é", storage.MaxCredentialNameLen/2) // 64 bytes, 32 runes
	data := bytes.Repeat([]byte{0x00, 0xff, 0x80, 'x'}, storage.MaxCredentialDataLen/4)
	for i, u := range users {
		seed := byte(i + 1)
		c1 := storage.Credential{User: u, ID: long(seed, 0x01), Name: name, Data: data, SignCount: 1, CreatedAt: base}
		c2 := c1
		c2.ID = long(seed, 0x02)
		c3 := c1
		c3.ID = long(seed, 0x01)
		c3.ID[0] ^= 0x80
		c3.CreatedAt = base.Add(time.Second)
		for _, c := range []storage.Credential{c1, c2, c3} {
			must(t, cs.AddCredential(ctx, c))
		}
		dup := c2
		dup.User = "cred-limits-other"
		wantErr(t, cs.AddCredential(ctx, dup), storage.ErrCredentialExists)
		expectCredentials(t, cs, u, c1, c2, c3) // c1 and c2 by ID: they differ in the last byte
		newData := bytes.Repeat([]byte{0xfe}, storage.MaxCredentialDataLen)
		must(t, cs.UseCredential(ctx, u, c2.ID, 2, newData, base.Add(time.Minute)))
		got, err := cs.Credentials(ctx, u)
		must(t, err)
		for _, g := range got {
			if bytes.Equal(g.ID, c2.ID) != bytes.Equal(g.Data, newData) {
				t.Fatalf("UseCredential of one long ID changed another (or not its own): %x...", g.ID[len(g.ID)-4:])
			}
		}
		if ok, err := cs.DeleteCredential(ctx, u, c1.ID); err != nil || !ok {
			t.Fatalf("DeleteCredential of a long ID = %v, %v", ok, err)
		}
		if n := len(mustCredentials(t, cs, u)); n != 2 {
			t.Fatalf("deleting one long ID left %d credentials, want 2", n)
		}
	}
	expectCredentials(t, cs, "cred-limits-other")
}

func mustCredentials(t *testing.T, cs storage.CredentialStore, user string) []storage.Credential {
	t.Helper()
	got, err := cs.Credentials(context.Background(), user)
	must(t, err)
	return got
}

// testCredentialCancelled: with a cancelled context every method fails
// and writes nothing.
func testCredentialCancelled(t *testing.T, cs storage.CredentialStore) {
	bg := context.Background()
	const u = "cred-cancelled"
	c := credential(u, []byte("cancel-kept"), base)
	must(t, cs.AddCredential(bg, c))
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := cs.AddCredential(ctx, credential(u, []byte("cancel-new"), base)); err == nil {
		t.Error("AddCredential with a cancelled context returned nil")
	}
	if _, err := cs.Credentials(ctx, u); err == nil {
		t.Error("Credentials with a cancelled context returned nil")
	}
	if err := cs.UseCredential(ctx, u, c.ID, 100, []byte("x"), base); err == nil {
		t.Error("UseCredential with a cancelled context returned nil")
	}
	if _, err := cs.DeleteCredential(ctx, u, c.ID); err == nil {
		t.Error("DeleteCredential with a cancelled context returned nil")
	}
	expectCredentials(t, cs, u, c)
	// The ID the cancelled call named is free.
	must(t, cs.AddCredential(bg, credential("cred-cancelled-2", []byte("cancel-new"), base)))
}

// testCredentialAddRace: of concurrent registrations of one ID by two
// users exactly one succeeds, the others get ErrCredentialExists.
func testCredentialAddRace(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	users := []string{"cred-race-1", "cred-race-2"}
	id := []byte("raced-id")
	ok, errs := race(credentialRacers, func(i int) error {
		c := credential(users[i%2], id, base)
		c.Name = fmt.Sprintf("racer %d", i)
		return cs.AddCredential(ctx, c)
	})
	if ok != 1 {
		t.Fatalf("%d of %d concurrent AddCredential calls succeeded, want 1 (errors %v)", ok, credentialRacers, errs)
	}
	for _, err := range errs {
		wantErr(t, err, storage.ErrCredentialExists)
	}
	n := 0
	for _, u := range users {
		n += len(mustCredentials(t, cs, u))
	}
	if n != 1 {
		t.Fatalf("the race left %d credentials, want 1", n)
	}
}

// testCredentialUseRace: of concurrent uses with one count exactly one
// succeeds (the count is not above the stored one for the others).
func testCredentialUseRace(t *testing.T, cs storage.CredentialStore) {
	ctx := context.Background()
	const u = "cred-use-race"
	c := credential(u, []byte("use-raced"), base)
	c.SignCount = 1
	must(t, cs.AddCredential(ctx, c))
	ok, errs := race(credentialRacers, func(i int) error {
		return cs.UseCredential(ctx, u, c.ID, 2, []byte(fmt.Sprintf("racer %d", i)), base.Add(time.Minute))
	})
	if ok != 1 {
		t.Fatalf("%d of %d concurrent UseCredential calls with one count succeeded, want 1 (errors %v)", ok, credentialRacers, errs)
	}
	for _, err := range errs {
		wantErr(t, err, storage.ErrSignCount)
	}
	got := mustCredentials(t, cs, u)
	if len(got) != 1 || got[0].SignCount != 2 {
		t.Fatalf("after the race: %+v", got)
	}
}

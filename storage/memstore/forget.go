package memstore

import (
	"context"
	"hash/maphash"
	"slices"

	"github.com/mfakit/mfakit/storage"
)

var _ storage.Eraser = (*Store)(nil)

// ForgetUser implements storage.Eraser. It holds the lock of the user's
// shard and of each send key's shard (taken in shard order, so it never
// deadlocks with another call) for the whole removal, so no reader sees
// the user half forgotten; it frees the IDs of the user's credentials in
// the same step. Enrollments are found by user; codes, and failure
// state of any factor, by a pass over the user's shard, about 1/64 of
// the store's records of their kind.
func (s *Store) ForgetUser(ctx context.Context, user string, sendKeys []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	idx := []int{s.shardIndex(user)}
	for _, k := range sendKeys {
		idx = append(idx, s.shardIndex(k))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range idx {
			s.shards[i].mu.Unlock()
		}
	}()

	sh := s.shard(user)
	for f := range sh.factors() {
		sh.remove(user, f)
	}
	for k := range sh.codes {
		if k.user == user {
			delete(sh.codes, k)
		}
	}
	for k := range sh.attempts {
		if k.user == user {
			delete(sh.attempts, k)
		}
	}
	delete(sh.recovery, user)
	s.forgetCredentials(sh, user)
	for _, k := range sendKeys {
		delete(s.shard(k).sends, k)
	}
	return nil
}

// shardIndex is the index in s.shards of the shard of key.
func (s *Store) shardIndex(key string) int {
	return int(maphash.String(s.seed, key) % shardCount)
}

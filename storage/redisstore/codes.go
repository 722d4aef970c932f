package redisstore

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// PutCode implements storage.CodeStore in one script that sets the code
// and its TTL and lists its purpose in the user's code index (see
// putCodeScript), by which ForgetUser finds the user's codes.
func (s *Store) PutCode(ctx context.Context, c storage.Code) error {
	ttl := max(s.ttl(c.ExpiresAt).Milliseconds(), 1)
	member := b64.EncodeToString([]byte(c.Purpose))
	res, err := putCodeScript.Run(ctx, s.rdb, []string{s.codeKey(c.User, c.Purpose), s.codeIndexKey(c.User)},
		c.Hash, micros(c.ExpiresAt), ttl, member).Result()
	return outcome("put code", res, err)
}

// ConsumeCode implements storage.CodeStore in one script.
func (s *Store) ConsumeCode(ctx context.Context, user, purpose string, hash []byte, now time.Time) error {
	res, err := consumeScript.Run(ctx, s.rdb, []string{s.codeKey(user, purpose)}, hash, micros(now), rand.Text()).Result()
	return outcome("consume code", res, err)
}

// DeleteCode implements storage.CodeStore.
func (s *Store) DeleteCode(ctx context.Context, user, purpose string) error {
	if err := s.rdb.Del(ctx, s.codeKey(user, purpose)).Err(); err != nil {
		return wrap("delete code", err)
	}
	return nil
}

package redisstore

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
)

// PutCode implements storage.CodeStore: the code and its TTL are set in
// one MULTI transaction.
func (s *Store) PutCode(ctx context.Context, c storage.Code) error {
	key := s.codeKey(c.User, c.Purpose)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, "h", c.Hash, "x", micros(c.ExpiresAt))
		p.PExpire(ctx, key, s.ttl(c.ExpiresAt))
		return nil
	})
	if err != nil {
		return wrap("put code", err)
	}
	return nil
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

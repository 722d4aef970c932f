package redisstore

import (
	"context"
	"crypto/rand"

	"github.com/redis/go-redis/v9"
)

// ReplaceRecoveryCodes implements storage.RecoveryStore in one MULTI
// transaction (DEL then SADD).
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	key := s.recoveryKey(user)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(hashes) > 0 {
			members := make([]any, len(hashes))
			for i, h := range hashes {
				members[i] = h
			}
			p.SAdd(ctx, key, members...)
		}
		return nil
	})
	if err != nil {
		return wrap("replace recovery codes", err)
	}
	return nil
}

// UseRecoveryCode implements storage.RecoveryStore in one script.
func (s *Store) UseRecoveryCode(ctx context.Context, user string, hash []byte) error {
	res, err := useRecoveryScript.Run(ctx, s.rdb, []string{s.recoveryKey(user), s.requestKey(user, rand.Text())}, hash).Result()
	return outcome("use recovery code", res, err)
}

// RecoveryCodesLeft implements storage.RecoveryStore.
func (s *Store) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	n, err := s.rdb.SCard(ctx, s.recoveryKey(user)).Result()
	if err != nil {
		return 0, wrap("recovery codes left", err)
	}
	return int(n), nil
}

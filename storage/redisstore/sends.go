package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// ReserveSend implements storage.AttemptStore in one script.
func (s *Store) ReserveSend(ctx context.Context, key string, now time.Time, limit storage.SendLimit) (time.Duration, error) {
	ttl := max(limit.MinGap, limit.Window) + s.grace
	wait, err := sendScript.Run(ctx, s.rdb, []string{s.sendKey(key)}, micros(now),
		limit.MinGap.Microseconds(), limit.Window.Microseconds(), limit.Max, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, wrap("reserve send", err)
	}
	return time.Duration(wait) * time.Microsecond, nil
}

// ReleaseSend implements storage.SendReleaser in one script.
func (s *Store) ReleaseSend(ctx context.Context, key string, at time.Time) error {
	res, err := releaseScript.Run(ctx, s.rdb, []string{s.sendKey(key)}, strconv.FormatInt(micros(at), 10)).Result()
	return outcome("release send", res, err)
}

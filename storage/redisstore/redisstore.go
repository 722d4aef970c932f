// Package redisstore is a storage.Store on Redis (github.com/redis/go-redis/v9).
// Every atomic operation of the Store contract is one Lua script or one
// single-key command, so any number of app instances sharing a Redis
// behave as one. Pending enrollments, codes and send-throttle state carry
// TTLs and vanish on their own an hour after they expire; verified
// enrollments and failure counts never expire.
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	store, err := redisstore.New(client, redisstore.Options{})
//
// All keys of one user share a hash tag, so the store works on Redis
// Cluster too.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// KeyPrefix starts every key. Default "mfakit:".
	KeyPrefix string
	// Grace is how long expired records stay before Redis drops them.
	// Default 1 hour.
	Grace time.Duration
	// Now is the wall clock used to turn expiry times into TTLs.
	// Default time.Now.
	Now func() time.Time
}

// Store is a storage.Store on Redis. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	grace  time.Duration
	now    func() time.Time
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.RecoveryStore = (*Store)(nil)
	_ storage.Resealer      = (*Store)(nil)
	_ storage.SendReleaser  = (*Store)(nil)
	_ storage.StateReader   = (*Store)(nil)
)

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "mfakit:"
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, prefix: opts.KeyPrefix, grace: opts.Grace, now: opts.Now}, nil
}

var b64 = base64.RawURLEncoding

// userKey returns the key of one record of user. The user part is encoded
// (so no name can collide with another or break the hash tag) and braced
// (so one user's keys share a Cluster slot).
func (s *Store) userKey(user, kind, name string) string {
	return s.prefix + "{" + b64.EncodeToString([]byte(user)) + "}:" + kind + ":" + name
}

func (s *Store) enrollmentKey(user string, f storage.Factor) string {
	return s.userKey(user, "e", string(f))
}

func (s *Store) codeKey(user, purpose string) string {
	return s.userKey(user, "c", b64.EncodeToString([]byte(purpose)))
}

func (s *Store) attemptsKey(user string, f storage.Factor) string {
	return s.userKey(user, "a", string(f))
}

func (s *Store) sendKey(key string) string {
	return s.prefix + "s:{" + b64.EncodeToString([]byte(key)) + "}"
}

// ttl is how long a record expiring at t should live: until t plus grace.
func (s *Store) ttl(t time.Time) time.Duration {
	return max(t.Sub(s.now()), 0) + s.grace
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func wrap(op string, err error) error { return fmt.Errorf("redisstore: %s: %w", op, err) }

// outcome maps a script's status reply to the storage errors.
func outcome(op string, res any, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	switch res {
	case "OK":
		return nil
	case "NOTFOUND":
		return storage.ErrNotFound
	case "VERIFIED":
		return storage.ErrAlreadyVerified
	case "EXPIRED":
		return storage.ErrExpired
	case "REUSED":
		return storage.ErrStepReused
	case "MISMATCH":
		return storage.ErrCodeMismatch
	}
	return wrap(op, fmt.Errorf("unexpected script reply %v", res))
}

var enrollmentFields = []string{"id", "v", "s", "k", "l", "c", "va", "x"}

func (s *Store) readEnrollment(ctx context.Context, user string, f storage.Factor) (storage.Enrollment, error) {
	vals, err := s.rdb.HMGet(ctx, s.enrollmentKey(user, f), enrollmentFields...).Result()
	if err != nil {
		return storage.Enrollment{}, wrap("enrollment", err)
	}
	return decodeEnrollment(user, f, vals)
}

func decodeEnrollment(user string, f storage.Factor, vals []any) (storage.Enrollment, error) {
	if vals[0] == nil {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	str := func(i int) string { v, _ := vals[i].(string); return v }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	e := storage.Enrollment{User: user, Factor: f, ID: str(0), Verified: str(1) == "1", KeyID: str(3),
		LastStep: num(4), CreatedAt: fromMicros(num(5)), VerifiedAt: fromMicros(num(6)), ExpiresAt: fromMicros(num(7))}
	if sec := str(2); sec != "" {
		e.Secret = []byte(sec)
	}
	return e, nil
}

// Enrollments implements storage.EnrollmentStore.
func (s *Store) Enrollments(ctx context.Context, user string) ([]storage.Enrollment, error) {
	var out []storage.Enrollment
	for _, f := range []storage.Factor{storage.Authenticator, storage.Email} {
		e, err := s.readEnrollment(ctx, user, f)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Enrollment implements storage.EnrollmentStore.
func (s *Store) Enrollment(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, error) {
	return s.readEnrollment(ctx, user, factor)
}

var beginScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'v') == '1' then return 'VERIFIED' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'v', '0', 's', ARGV[2], 'k', ARGV[3], 'l', '0', 'c', ARGV[4], 'va', '0', 'x', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 'OK'`)

// BeginEnrollment implements storage.EnrollmentStore in one script.
func (s *Store) BeginEnrollment(ctx context.Context, e storage.Enrollment) error {
	res, err := beginScript.Run(ctx, s.rdb, []string{s.enrollmentKey(e.User, e.Factor)},
		e.ID, e.Secret, e.KeyID, micros(e.CreatedAt), micros(e.ExpiresAt), s.ttl(e.ExpiresAt).Milliseconds()).Result()
	return outcome("begin enrollment", res, err)
}

// The scripts that change state take a request id (ARGV rq) and remember
// the last one they applied: go-redis resends a command whose connection
// broke before the reply came, and the resend must answer like the
// original instead of applying twice (a step "reused" by its own request,
// a failure counted twice).

var confirmScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'id', 'v', 'x', 'rq')
if not h[1] or h[1] ~= ARGV[1] then return 'NOTFOUND' end
if h[2] == '1' then
  if h[4] == ARGV[4] then return 'OK' end
  return 'VERIFIED'
end
if tonumber(h[3]) <= tonumber(ARGV[3]) then return 'EXPIRED' end
redis.call('HSET', KEYS[1], 'v', '1', 'va', ARGV[3], 'x', '0', 'l', ARGV[2], 'rq', ARGV[4])
redis.call('PERSIST', KEYS[1])
return 'OK'`)

// ConfirmEnrollment implements storage.EnrollmentStore in one script.
func (s *Store) ConfirmEnrollment(ctx context.Context, user string, factor storage.Factor, id string, step int64, now time.Time) error {
	res, err := confirmScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, id, step, micros(now),
		rand.Text()).Result()
	return outcome("confirm enrollment", res, err)
}

var acceptScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'v', 'l', 'rq')
if h[1] ~= '1' then return 'NOTFOUND' end
if h[3] == ARGV[2] then return 'OK' end
if tonumber(h[2]) >= tonumber(ARGV[1]) then return 'REUSED' end
redis.call('HSET', KEYS[1], 'l', ARGV[1], 'rq', ARGV[2])
return 'OK'`)

// AcceptStep implements storage.EnrollmentStore in one script.
func (s *Store) AcceptStep(ctx context.Context, user string, factor storage.Factor, step int64) error {
	res, err := acceptScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, step, rand.Text()).Result()
	return outcome("accept step", res, err)
}

// DeleteEnrollment implements storage.EnrollmentStore.
func (s *Store) DeleteEnrollment(ctx context.Context, user string, factor storage.Factor) (bool, error) {
	n, err := s.rdb.Del(ctx, s.enrollmentKey(user, factor)).Result()
	if err != nil {
		return false, wrap("delete enrollment", err)
	}
	return n > 0, nil
}

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

// consumeScript leaves a short-lived tombstone naming the request that
// used the code, so a resent request is answered OK once more.
var consumeScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'h', 'x', 'used')
if h[3] then
  if h[3] == ARGV[3] then return 'OK' end
  return 'NOTFOUND'
end
if not h[1] then return 'NOTFOUND' end
if tonumber(h[2]) <= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) return 'EXPIRED' end
if h[1] ~= ARGV[1] then return 'MISMATCH' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'used', ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
return 'OK'`)

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

// Attempts implements storage.AttemptStore.
func (s *Store) Attempts(ctx context.Context, user string, factor storage.Factor) (storage.Attempts, error) {
	vals, err := s.rdb.HMGet(ctx, s.attemptsKey(user, factor), "f", "u").Result()
	if err != nil {
		return storage.Attempts{}, wrap("attempts", err)
	}
	return decodeAttempts(vals), nil
}

// FactorState implements storage.StateReader with one pipelined round trip.
func (s *Store) FactorState(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, storage.Attempts, error) {
	var ev, av *redis.SliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ev = p.HMGet(ctx, s.enrollmentKey(user, factor), enrollmentFields...)
		av = p.HMGet(ctx, s.attemptsKey(user, factor), "f", "u")
		return nil
	})
	if err != nil {
		return storage.Enrollment{}, storage.Attempts{}, wrap("factor state", err)
	}
	a := decodeAttempts(av.Val())
	e, err := decodeEnrollment(user, factor, ev.Val())
	return e, a, err
}

func decodeAttempts(vals []any) storage.Attempts {
	var a storage.Attempts
	if v, ok := vals[0].(string); ok {
		a.Failures, _ = strconv.Atoi(v)
	}
	if v, ok := vals[1].(string); ok {
		u, _ := strconv.ParseInt(v, 10, 64)
		a.LockedUntil = fromMicros(u)
	}
	return a
}

// recordScript counts a failure once per request id (KEYS[2] marks it).
var recordScript = redis.NewScript(`
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', 60000) then return redis.call('HINCRBY', KEYS[1], 'f', 1) end
return tonumber(redis.call('HGET', KEYS[1], 'f') or '0')`)

// RecordFailure implements storage.AttemptStore in one script.
func (s *Store) RecordFailure(ctx context.Context, user string, factor storage.Factor) (int, error) {
	n, err := recordScript.Run(ctx, s.rdb, []string{s.attemptsKey(user, factor), s.userKey(user, "r", rand.Text())}).Int64()
	if err != nil {
		return 0, wrap("record failure", err)
	}
	return int(n), nil
}

var lockScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'u', ARGV[1]) end
return 'OK'`)

// LockUntil implements storage.AttemptStore in one script.
func (s *Store) LockUntil(ctx context.Context, user string, factor storage.Factor, until time.Time) error {
	res, err := lockScript.Run(ctx, s.rdb, []string{s.attemptsKey(user, factor)}, micros(until)).Result()
	return outcome("lock", res, err)
}

// ResetAttempts implements storage.AttemptStore.
func (s *Store) ResetAttempts(ctx context.Context, user string, factor storage.Factor) error {
	if err := s.rdb.Del(ctx, s.attemptsKey(user, factor)).Err(); err != nil {
		return wrap("reset attempts", err)
	}
	return nil
}

// reserveScript is storage.NextSend in Lua, so the check and the update
// are one atomic step. Times are Unix microseconds; numbers are written
// with %.0f because Lua's default formatting would round them.
var reserveScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'w', 'l', 'n')
local w, l, n = tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3] or '0')
local now, gap, win, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if l ~= 0 and now - l < gap then return l + gap - now end
if w == 0 or now >= w + win then w, n = now, 0 end
if max > 0 and n >= max then return w + win - now end
redis.call('HSET', KEYS[1], 'w', string.format('%.0f', w), 'l', ARGV[1], 'n', n + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0`)

// ReserveSend implements storage.AttemptStore in one script.
func (s *Store) ReserveSend(ctx context.Context, key string, now time.Time, limit storage.SendLimit) (time.Duration, error) {
	ttl := max(limit.MinGap, limit.Window) + s.grace
	wait, err := reserveScript.Run(ctx, s.rdb, []string{s.sendKey(key)}, micros(now),
		limit.MinGap.Microseconds(), limit.Window.Microseconds(), limit.Max, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, wrap("reserve send", err)
	}
	return time.Duration(wait) * time.Microsecond, nil
}

func (s *Store) recoveryKey(user string) string { return s.userKey(user, "rc", "set") }

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

// useRecoveryScript removes a code once per request id, so a resent
// request is answered like the original.
var useRecoveryScript = redis.NewScript(`
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], '1', 'PX', 60000)
  return 'OK'
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'OK' end
return 'NOTFOUND'`)

// UseRecoveryCode implements storage.RecoveryStore in one script.
func (s *Store) UseRecoveryCode(ctx context.Context, user string, hash []byte) error {
	res, err := useRecoveryScript.Run(ctx, s.rdb, []string{s.recoveryKey(user), s.userKey(user, "r", rand.Text())}, hash).Result()
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

var resealScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'id', 'k')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then return 'NOTFOUND' end
redis.call('HSET', KEYS[1], 's', ARGV[3], 'k', ARGV[4])
return 'OK'`)

// ResealSecret implements storage.Resealer in one script.
func (s *Store) ResealSecret(ctx context.Context, user string, factor storage.Factor, id, oldKeyID string, secret []byte, keyID string) error {
	res, err := resealScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, id, oldKeyID, secret, keyID).Result()
	return outcome("reseal secret", res, err)
}

var releaseScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'l', 'n')
if h[1] == ARGV[1] and tonumber(h[2] or '0') > 0 then
  redis.call('HSET', KEYS[1], 'l', '0', 'n', tonumber(h[2]) - 1)
end
return 'OK'`)

// ReleaseSend implements storage.SendReleaser in one script.
func (s *Store) ReleaseSend(ctx context.Context, key string, at time.Time) error {
	res, err := releaseScript.Run(ctx, s.rdb, []string{s.sendKey(key)}, strconv.FormatInt(micros(at), 10)).Result()
	return outcome("release send", res, err)
}

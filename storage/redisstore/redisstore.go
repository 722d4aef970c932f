// Package redisstore is a storage.Store on Redis (github.com/redis/go-redis/v9).
// Every atomic operation of the Store contract is one Lua script or one
// single-key command, so any number of app instances sharing a Redis
// behave as one. Pending enrollments, codes and send-throttle state carry
// TTLs and vanish on their own an hour after they expire; failure state
// vanishes storage.AttemptIdle after its last reservation (or after its
// lock ends, if later); verified enrollments, recovery codes and WebAuthn
// credentials never expire.
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	store, err := redisstore.New(client, redisstore.Options{})
//
// All keys of one user share a hash tag, so the store works on Redis
// Cluster too. The one rule that spans users, that a WebAuthn credential
// ID belongs to one user at most, takes a key per ID and two steps
// (credentials.go says what a failure between them leaves).
//
// Redis keeps times at microsecond precision.
//
// The operations of the kit's hot paths are one round trip each:
// Enrollments one HMGET per factor in one pipeline, ReserveFactor,
// ReserveAttempt and AcceptStep one EVALSHA (call.go says how their
// arguments and replies avoid allocations). They go through the client's
// autopipeliner unless Options.NoAutoPipeline is set. The key layout is the one
// earlier versions wrote, so an upgrade needs no migration, and old and
// new instances may share a Redis while it rolls out.
package redisstore

import (
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
	// KeyPrefix starts every key. Default "mfakit:". Leave braces out of
	// it: Redis Cluster would hash on them instead of on the user.
	KeyPrefix string
	// Grace is how long expired records stay before Redis drops them.
	// Default 1 hour.
	Grace time.Duration
	// Now is the wall clock used to turn expiry times into TTLs.
	// Default time.Now.
	Now func() time.Time
	// NoAutoPipeline sends every command on its own. By default, when
	// the client is a *redis.Client or *redis.ClusterClient, the hot
	// path's commands (Enrollments, ReserveFactor, ReserveAttempt,
	// AcceptStep) go through the client's autopipeliner (go-redis's
	// AutoPipeliner, full duplex), which writes the commands of
	// concurrent requests to Redis together: Redis, which runs on one
	// core, then reads and answers many with one system call each way
	// instead of one per command (docs/SCALING.md has the figures). A
	// lone command still goes at once. A command the autopipeliner has
	// queued is bounded by the client's ReadTimeout and WriteTimeout,
	// not by its context; and if a connection breaks, the batch is sent
	// again as a whole, which these scripts answer as they answered the
	// first time (see scripts.go). The rest of the store's commands use
	// the client as it is.
	NoAutoPipeline bool
}

// Store is a storage.Store on Redis. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	// hot carries the hot path's commands: rdb's autopipeliner, or rdb
	// (see Options.NoAutoPipeline).
	hot    redis.UniversalClient
	prefix string
	grace  time.Duration
	now    func() time.Time
}

var (
	_ storage.Store           = (*Store)(nil)
	_ storage.Resealer        = (*Store)(nil)
	_ storage.SendReleaser    = (*Store)(nil)
	_ storage.ReservingReader = (*Store)(nil)
	_ storage.CredentialStore = (*Store)(nil)
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
	s := &Store{rdb: rdb, hot: rdb, prefix: opts.KeyPrefix, grace: opts.Grace, now: opts.Now}
	if !opts.NoAutoPipeline {
		hot, err := autoPipeliner(rdb)
		if err != nil {
			return nil, fmt.Errorf("redisstore: autopipeliner: %w", err)
		}
		s.hot = hot
	}
	return s, nil
}

// autoPipeliner returns the client's full-duplex autopipeliner, or rdb if
// it is of a kind that has none. The autopipeliner belongs to the client:
// closing the client stops it.
func autoPipeliner(rdb redis.UniversalClient) (redis.UniversalClient, error) {
	o := redis.DefaultBlockingAutoPipelineOptions()
	o.FullDuplex = true
	switch c := rdb.(type) {
	case *redis.Client:
		return c.AutoPipelineWithOptions(o)
	case *redis.ClusterClient:
		return c.AutoPipelineWithOptions(o)
	}
	return rdb, nil
}

var b64 = base64.RawURLEncoding

// userKey returns the key of one record of user. The user part is encoded
// (so no name can collide with another or break the hash tag) and braced
// (so one user's keys share a Cluster slot, and one script may touch
// several of them).
func (s *Store) userKey(user, kind, name string) string {
	return s.prefix + "{" + b64.EncodeToString([]byte(user)) + "}:" + kind + ":" + name
}

func (s *Store) enrollmentKey(user string, f storage.Factor) string {
	return s.userKey(user, "e", string(f))
}

func (s *Store) codeKey(user, purpose string) string {
	return s.userKey(user, "c", b64.EncodeToString([]byte(purpose)))
}

// codeIndexKey names the set of the encoded purposes (as in codeKey) of
// the user's codes, by which ForgetUser finds them without a SCAN.
func (s *Store) codeIndexKey(user string) string { return s.userKey(user, "ci", "set") }

func (s *Store) attemptsKey(user string, f storage.Factor) string {
	return s.userKey(user, "a", string(f))
}

func (s *Store) recoveryKey(user string) string { return s.userKey(user, "rc", "set") }

// requestKey names the short-lived marker by which a script recognises a
// resend of a request it already applied (see scripts.go).
func (s *Store) requestKey(user, rq string) string { return s.userKey(user, "r", rq) }

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

// str and num read field i of a reply array (nil when missing).
func str(vals []any, i int) string { v, _ := vals[i].(string); return v }

func num(vals []any, i int) int64 { n, _ := strconv.ParseInt(str(vals, i), 10, 64); return n }

func wrap(op string, err error) error { return fmt.Errorf("redisstore: %s: %w", op, err) }

// statusErr maps a script's status word to the storage errors.
func statusErr(op string, res string) error {
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
	case "LOCKED":
		return storage.ErrLocked
	}
	return wrap(op, fmt.Errorf("unexpected script reply %q", res))
}

// outcome maps a script's status reply to the storage errors.
func outcome(op string, res any, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	if s, ok := res.(string); ok {
		return statusErr(op, s)
	}
	return wrap(op, fmt.Errorf("unexpected script reply %v", res))
}

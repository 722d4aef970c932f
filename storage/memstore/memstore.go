// Package memstore is the in-process Store: fast, safe for concurrent use,
// and gone when the process exits. It suits tests and single-instance hosts;
// several instances behind a load balancer need a shared backend (sqlstore,
// redisstore), because replay protection and lockout counts must be shared.
package memstore

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/mfakit/mfakit/storage"
)

const shardCount = 64

type factorKey struct {
	user   string
	factor storage.Factor
}

type codeKey struct {
	user, purpose string
}

type shard struct {
	mu sync.Mutex
	// authenticators and emails hold the enrollments of the two factors
	// mfakit enrolls, by user; otherFactors those of any other factor a
	// caller stores, by factor and then user (see enrollments.go).
	authenticators map[string]*enrollment
	emails         map[string]*enrollment
	otherFactors   map[storage.Factor]map[string]*enrollment
	codes          map[codeKey]storage.Code
	attempts       map[factorKey]storage.Attempts // only where failures were reserved
	sends          map[string]storage.SendState
	recovery       map[string]map[string]struct{}
	credentials    map[string][]storage.Credential // by user, in the order added
}

// Store is an in-memory storage.Store. The zero value is not usable; call New.
//
// Like the SQL and Redis stores, it keeps times to the microsecond and
// returns them in UTC. An enrolled user (a verified authenticator) costs
// about 230 bytes of heap; BenchmarkMemoryPerUser measures it.
type Store struct {
	seed    maphash.Seed
	shards  [shardCount]shard
	credIDs credentialIDs
}

var (
	_ storage.Store           = (*Store)(nil)
	_ storage.Cleaner         = (*Store)(nil)
	_ storage.Resealer        = (*Store)(nil)
	_ storage.SendReleaser    = (*Store)(nil)
	_ storage.ReservingReader = (*Store)(nil)
)

// New returns an empty Store. State is split into shards by user so that
// requests for different users rarely wait on the same lock.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed(), credIDs: credentialIDs{owner: map[string]string{}}}
	for i := range s.shards {
		s.shards[i] = shard{
			authenticators: map[string]*enrollment{},
			emails:         map[string]*enrollment{},
			codes:          map[codeKey]storage.Code{},
			attempts:       map[factorKey]storage.Attempts{},
			sends:          map[string]storage.SendState{},
			recovery:       map[string]map[string]struct{}{},
			credentials:    map[string][]storage.Credential{},
		}
	}
	return s
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%shardCount]
}

// lock takes the shard of key after checking ctx, so a cancelled request
// never changes state.
func (s *Store) lock(ctx context.Context, key string) (*shard, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	return sh, nil
}

// DeleteExpired implements storage.Cleaner. A long-running host calls it
// on a schedule so that abandoned enrollments and codes, idle send
// throttles and idle failure state (S27) do not pile up.
func (s *Store) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	attemptIdle := cutoff.Add(-storage.AttemptIdle)
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		sh := &s.shards[i]
		sh.mu.Lock()
		for f, m := range sh.factors() {
			for user, r := range m {
				if !r.verified && r.expiresAt.time().Before(cutoff) {
					delete(m, user)
					n++
				}
			}
			sh.dropEmpty(f, m)
		}
		for k, c := range sh.codes {
			if c.ExpiresAt.Before(cutoff) {
				delete(sh.codes, k)
				n++
			}
		}
		for k, a := range sh.attempts {
			if a.LastAt.Before(attemptIdle) && a.LockedUntil.Before(cutoff) {
				delete(sh.attempts, k)
				n++
			}
		}
		for k, st := range sh.sends {
			if st.Last.Before(cutoff.Add(-storage.SendIdle)) {
				delete(sh.sends, k)
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n, nil
}

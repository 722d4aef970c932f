// Package memstore is the in-process Store: fast, safe for concurrent use,
// and gone when the process exits. It suits tests and single-instance hosts;
// several instances behind a load balancer need a shared backend (sqlstore,
// redisstore), because replay protection and lockout counts must be shared.
package memstore

import (
	"bytes"
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
	mu          sync.Mutex
	enrollments map[factorKey]storage.Enrollment
	codes       map[codeKey]storage.Code
	attempts    map[factorKey]storage.Attempts
	sends       map[string]storage.SendState
	recovery    map[string]map[string]struct{}
}

// Store is an in-memory storage.Store. The zero value is not usable; call New.
type Store struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.Cleaner       = (*Store)(nil)
	_ storage.RecoveryStore = (*Store)(nil)
	_ storage.Resealer      = (*Store)(nil)
	_ storage.SendReleaser  = (*Store)(nil)
	_ storage.StateReader   = (*Store)(nil)
)

// New returns an empty Store. State is split into shards by user so that
// requests for different users rarely wait on the same lock.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i] = shard{
			enrollments: map[factorKey]storage.Enrollment{},
			codes:       map[codeKey]storage.Code{},
			attempts:    map[factorKey]storage.Attempts{},
			sends:       map[string]storage.SendState{},
			recovery:    map[string]map[string]struct{}{},
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

func cloneEnrollment(e storage.Enrollment) storage.Enrollment {
	e.Secret = bytes.Clone(e.Secret)
	return e
}

// Enrollments implements storage.EnrollmentStore.
func (s *Store) Enrollments(ctx context.Context, user string) ([]storage.Enrollment, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return nil, err
	}
	defer sh.mu.Unlock()
	var out []storage.Enrollment
	for _, f := range []storage.Factor{storage.Authenticator, storage.Email} {
		if e, ok := sh.enrollments[factorKey{user, f}]; ok {
			out = append(out, cloneEnrollment(e))
		}
	}
	return out, nil
}

// Enrollment implements storage.EnrollmentStore.
func (s *Store) Enrollment(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return storage.Enrollment{}, err
	}
	defer sh.mu.Unlock()
	e, ok := sh.enrollments[factorKey{user, factor}]
	if !ok {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	return cloneEnrollment(e), nil
}

// BeginEnrollment implements storage.EnrollmentStore.
func (s *Store) BeginEnrollment(ctx context.Context, e storage.Enrollment) error {
	sh, err := s.lock(ctx, e.User)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := factorKey{e.User, e.Factor}
	if old, ok := sh.enrollments[k]; ok && old.Verified {
		return storage.ErrAlreadyVerified
	}
	e = cloneEnrollment(e)
	e.Verified, e.VerifiedAt, e.LastStep = false, time.Time{}, 0
	sh.enrollments[k] = e
	return nil
}

// ConfirmEnrollment implements storage.EnrollmentStore.
func (s *Store) ConfirmEnrollment(ctx context.Context, user string, factor storage.Factor, id string, step int64, now time.Time) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	e, ok := sh.enrollments[k]
	switch {
	case !ok || e.ID != id:
		return storage.ErrNotFound
	case e.Verified:
		return storage.ErrAlreadyVerified
	case !now.Before(e.ExpiresAt):
		return storage.ErrExpired
	}
	e.Verified, e.VerifiedAt, e.ExpiresAt, e.LastStep = true, now, time.Time{}, step
	sh.enrollments[k] = e
	return nil
}

// AcceptStep implements storage.EnrollmentStore.
func (s *Store) AcceptStep(ctx context.Context, user string, factor storage.Factor, step int64) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	e, ok := sh.enrollments[k]
	if !ok || !e.Verified {
		return storage.ErrNotFound
	}
	if step <= e.LastStep {
		return storage.ErrStepReused
	}
	e.LastStep = step
	sh.enrollments[k] = e
	return nil
}

// DeleteEnrollment implements storage.EnrollmentStore.
func (s *Store) DeleteEnrollment(ctx context.Context, user string, factor storage.Factor) (bool, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return false, err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	_, ok := sh.enrollments[k]
	delete(sh.enrollments, k)
	return ok, nil
}

// PutCode implements storage.CodeStore.
func (s *Store) PutCode(ctx context.Context, c storage.Code) error {
	sh, err := s.lock(ctx, c.User)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	c.Hash = bytes.Clone(c.Hash)
	sh.codes[codeKey{c.User, c.Purpose}] = c
	return nil
}

// ConsumeCode implements storage.CodeStore.
func (s *Store) ConsumeCode(ctx context.Context, user, purpose string, hash []byte, now time.Time) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := codeKey{user, purpose}
	c, ok := sh.codes[k]
	switch {
	case !ok:
		return storage.ErrNotFound
	case !now.Before(c.ExpiresAt):
		delete(sh.codes, k)
		return storage.ErrExpired
	case !bytes.Equal(c.Hash, hash):
		return storage.ErrCodeMismatch
	}
	delete(sh.codes, k)
	return nil
}

// DeleteCode implements storage.CodeStore.
func (s *Store) DeleteCode(ctx context.Context, user, purpose string) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	delete(sh.codes, codeKey{user, purpose})
	return nil
}

// Attempts implements storage.AttemptStore.
func (s *Store) Attempts(ctx context.Context, user string, factor storage.Factor) (storage.Attempts, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return storage.Attempts{}, err
	}
	defer sh.mu.Unlock()
	return sh.attempts[factorKey{user, factor}], nil
}

// RecordFailure implements storage.AttemptStore.
func (s *Store) RecordFailure(ctx context.Context, user string, factor storage.Factor) (int, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	a := sh.attempts[k]
	a.Failures++
	sh.attempts[k] = a
	return a.Failures, nil
}

// LockUntil implements storage.AttemptStore.
func (s *Store) LockUntil(ctx context.Context, user string, factor storage.Factor, until time.Time) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	a := sh.attempts[k]
	if until.After(a.LockedUntil) {
		a.LockedUntil = until
	}
	sh.attempts[k] = a
	return nil
}

// ResetAttempts implements storage.AttemptStore.
func (s *Store) ResetAttempts(ctx context.Context, user string, factor storage.Factor) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	delete(sh.attempts, factorKey{user, factor})
	return nil
}

// ReserveSend implements storage.AttemptStore.
func (s *Store) ReserveSend(ctx context.Context, key string, now time.Time, limit storage.SendLimit) (time.Duration, error) {
	sh, err := s.lock(ctx, key)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	next, wait := storage.NextSend(sh.sends[key], now, limit)
	if wait == 0 {
		sh.sends[key] = next
	}
	return wait, nil
}

// DeleteExpired implements storage.Cleaner. A long-running host calls it
// on a schedule so that abandoned enrollments and codes do not pile up.
func (s *Store) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.enrollments {
			if !e.Verified && e.ExpiresAt.Before(cutoff) {
				delete(sh.enrollments, k)
				n++
			}
		}
		for k, c := range sh.codes {
			if c.ExpiresAt.Before(cutoff) {
				delete(sh.codes, k)
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

// ReplaceRecoveryCodes implements storage.RecoveryStore.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if len(hashes) == 0 {
		delete(sh.recovery, user)
		return nil
	}
	set := make(map[string]struct{}, len(hashes))
	for _, h := range hashes {
		set[string(h)] = struct{}{}
	}
	sh.recovery[user] = set
	return nil
}

// UseRecoveryCode implements storage.RecoveryStore.
func (s *Store) UseRecoveryCode(ctx context.Context, user string, hash []byte) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	set := sh.recovery[user]
	if _, ok := set[string(hash)]; !ok {
		return storage.ErrNotFound
	}
	delete(set, string(hash))
	return nil
}

// RecoveryCodesLeft implements storage.RecoveryStore.
func (s *Store) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	return len(sh.recovery[user]), nil
}

// ResealSecret implements storage.Resealer.
func (s *Store) ResealSecret(ctx context.Context, user string, factor storage.Factor, id, oldKeyID string, secret []byte, keyID string) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	e, ok := sh.enrollments[k]
	if !ok || e.ID != id || e.KeyID != oldKeyID {
		return storage.ErrNotFound
	}
	e.Secret, e.KeyID = bytes.Clone(secret), keyID
	sh.enrollments[k] = e
	return nil
}

// ReleaseSend implements storage.SendReleaser.
func (s *Store) ReleaseSend(ctx context.Context, key string, at time.Time) error {
	sh, err := s.lock(ctx, key)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	st, ok := sh.sends[key]
	if ok && st.Last.Equal(at) && st.Count > 0 {
		st.Count--
		st.Last = time.Time{}
		sh.sends[key] = st
	}
	return nil
}

// FactorState implements storage.StateReader under one lock.
func (s *Store) FactorState(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, storage.Attempts, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return storage.Enrollment{}, storage.Attempts{}, err
	}
	defer sh.mu.Unlock()
	k := factorKey{user, factor}
	a := sh.attempts[k]
	e, ok := sh.enrollments[k]
	if !ok {
		return storage.Enrollment{}, a, storage.ErrNotFound
	}
	return cloneEnrollment(e), a, nil
}

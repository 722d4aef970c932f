package memstore

import (
	"context"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// Attempts implements storage.AttemptStore.
func (s *Store) Attempts(ctx context.Context, user string, factor storage.Factor) (storage.Attempts, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return storage.Attempts{}, err
	}
	defer sh.mu.Unlock()
	return sh.attempts[factorKey{user, factor}], nil
}

// ReserveAttempt implements storage.AttemptStore with storage.NextAttempt
// under the shard lock.
func (s *Store) ReserveAttempt(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Attempts, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return storage.Attempts{}, err
	}
	defer sh.mu.Unlock()
	return sh.reserve(factorKey{user, factor}, now, p)
}

// ReserveFactor implements storage.ReservingReader: the reservation and
// the read happen under one shard lock.
func (s *Store) ReserveFactor(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Enrollment, storage.Attempts, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return storage.Enrollment{}, storage.Attempts{}, err
	}
	defer sh.mu.Unlock()
	a, err := sh.reserve(factorKey{user, factor}, now, p)
	if err != nil {
		return storage.Enrollment{}, a, err
	}
	r := sh.enrollment(user, factor)
	if r == nil {
		return storage.Enrollment{}, a, storage.ErrNotFound
	}
	return r.export(user, factor), a, nil
}

// reserve applies storage.NextAttempt to the state of k. The caller holds
// sh.mu.
func (sh *shard) reserve(k factorKey, now time.Time, p storage.LockPolicy) (storage.Attempts, error) {
	a, ok := storage.NextAttempt(sh.attempts[k], now, p)
	if !ok {
		return a, storage.ErrLocked
	}
	sh.attempts[k] = a
	return a, nil
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

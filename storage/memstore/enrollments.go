package memstore

import (
	"bytes"
	"context"
	"time"

	"github.com/mfakit/mfakit/storage"
)

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

// AcceptStep implements storage.EnrollmentStore: the step and the cleared
// failure state change under one shard lock.
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
	delete(sh.attempts, k) // the success that ends the count, under the same lock
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

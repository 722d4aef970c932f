package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// enrollmentFields are the hash fields of an enrollment, in the order
// decodeEnrollment reads them.
var enrollmentFields = []string{"id", "v", "s", "k", "l", "c", "va", "x"}

func (s *Store) readEnrollment(ctx context.Context, user string, f storage.Factor) (storage.Enrollment, error) {
	vals, err := s.rdb.HMGet(ctx, s.enrollmentKey(user, f), enrollmentFields...).Result()
	if err != nil {
		return storage.Enrollment{}, wrap("enrollment", err)
	}
	return decodeEnrollment(user, f, vals)
}

// decodeEnrollment reads the values of enrollmentFields; ErrNotFound when
// there is no enrollment.
func decodeEnrollment(user string, f storage.Factor, vals []any) (storage.Enrollment, error) {
	if len(vals) < len(enrollmentFields) || vals[0] == nil {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	e := storage.Enrollment{User: user, Factor: f, ID: str(vals, 0), Verified: str(vals, 1) == "1",
		KeyID: str(vals, 3), LastStep: num(vals, 4), CreatedAt: fromMicros(num(vals, 5)),
		VerifiedAt: fromMicros(num(vals, 6)), ExpiresAt: fromMicros(num(vals, 7))}
	if sec := str(vals, 2); sec != "" {
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

// BeginEnrollment implements storage.EnrollmentStore in one script.
func (s *Store) BeginEnrollment(ctx context.Context, e storage.Enrollment) error {
	res, err := beginScript.Run(ctx, s.rdb, []string{s.enrollmentKey(e.User, e.Factor)},
		e.ID, e.Secret, e.KeyID, micros(e.CreatedAt), micros(e.ExpiresAt), s.ttl(e.ExpiresAt).Milliseconds()).Result()
	return outcome("begin enrollment", res, err)
}

// ConfirmEnrollment implements storage.EnrollmentStore in one script.
func (s *Store) ConfirmEnrollment(ctx context.Context, user string, factor storage.Factor, id string, step int64, now time.Time) error {
	res, err := confirmScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, id, step, micros(now),
		rand.Text()).Result()
	return outcome("confirm enrollment", res, err)
}

// AcceptStep implements storage.EnrollmentStore in one script, which also
// clears the failure state of (user, factor) on success.
func (s *Store) AcceptStep(ctx context.Context, user string, factor storage.Factor, step int64) error {
	res, err := acceptScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor), s.attemptsKey(user, factor)},
		step, rand.Text()).Result()
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

// ResealSecret implements storage.Resealer in one script.
func (s *Store) ResealSecret(ctx context.Context, user string, factor storage.Factor, id, oldKeyID string, secret []byte, keyID string) error {
	res, err := resealScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, id, oldKeyID, secret, keyID).Result()
	return outcome("reseal secret", res, err)
}

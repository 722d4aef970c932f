package memstore

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"time"
	"unique"

	"github.com/mfakit/mfakit/storage"
)

// enrollment is how a shard keeps a storage.Enrollment: small, since a
// store may hold one or two per user for millions of users. The user,
// the ID and the sealed secret share one allocation (data), which the
// shard's map key also points into; the factor is the map the record is
// in; times are Unix microseconds, the precision the storage contract
// asks of every backend; and the key ID is interned, since every user
// shares the few there are. At 64 bytes the record fills its size class.
type enrollment struct {
	data       string // the user, the ID, then the sealed secret
	keyID      unique.Handle[string]
	lastStep   int64
	createdAt  micros
	verifiedAt micros
	expiresAt  micros
	secretLen  uint32 // the length of the secret at the end of data
	verified   bool
}

// micros is an instant as Unix microseconds; noTime stands for the zero
// time.Time.
type micros int64

const noTime = micros(math.MinInt64)

func toMicros(t time.Time) micros {
	if t.IsZero() {
		return noTime
	}
	return micros(t.UnixMicro())
}

// time returns m as a UTC time.Time, as the SQL and Redis stores do.
func (m micros) time() time.Time {
	if m == noTime {
		return time.Time{}
	}
	return time.UnixMicro(int64(m)).UTC()
}

// newPending returns e as a pending record: not verified, no step used.
func newPending(e storage.Enrollment) (*enrollment, error) {
	n, err := secretLen(e.Secret)
	if err != nil {
		return nil, err
	}
	return &enrollment{
		data:       e.User + e.ID + string(e.Secret), // one allocation
		keyID:      unique.Make(e.KeyID),
		createdAt:  toMicros(e.CreatedAt),
		verifiedAt: noTime,
		expiresAt:  toMicros(e.ExpiresAt),
		secretLen:  n,
	}, nil
}

// secretLen returns the length of secret as a record keeps it, refusing a
// secret longer than 4 GiB (far beyond storage.MaxSecretLen).
func secretLen(secret []byte) (uint32, error) {
	if uint64(len(secret)) > math.MaxUint32 {
		return 0, fmt.Errorf("memstore: sealed secret of %d bytes is too long (the most is %d)", len(secret), storage.MaxSecretLen)
	}
	return uint32(len(secret)), nil
}

// id returns the enrollment's ID; user is the user it belongs to (the
// key it is stored under).
func (r *enrollment) id(user string) string {
	return r.data[len(user) : len(r.data)-int(r.secretLen)]
}

// secret returns a copy of the sealed secret, nil when there is none.
func (r *enrollment) secret() []byte {
	if r.secretLen == 0 {
		return nil
	}
	return []byte(r.data[len(r.data)-int(r.secretLen):])
}

// export returns r as the storage.Enrollment of (user, f). It shares no
// mutable memory with r.
func (r *enrollment) export(user string, f storage.Factor) storage.Enrollment {
	return storage.Enrollment{User: user, Factor: f, ID: r.id(user), Verified: r.verified, Secret: r.secret(),
		KeyID: r.keyID.Value(), LastStep: r.lastStep, CreatedAt: r.createdAt.time(),
		VerifiedAt: r.verifiedAt.time(), ExpiresAt: r.expiresAt.time()}
}

// enrollments returns the records of factor f by user: a nil map, which
// reads as empty, for a factor other than the two mfakit enrolls when none
// is stored. The caller holds sh.mu.
func (sh *shard) enrollments(f storage.Factor) map[string]*enrollment {
	switch f {
	case storage.Authenticator:
		return sh.authenticators
	case storage.Email:
		return sh.emails
	}
	return sh.otherFactors[f]
}

// enrollment returns the record of (user, f), or nil. The caller holds
// sh.mu.
func (sh *shard) enrollment(user string, f storage.Factor) *enrollment {
	return sh.enrollments(f)[user]
}

// put stores r as the record of (user, f), keyed by the user at the start
// of r.data so that the key costs no memory of its own. Storing over an
// existing key replaces the key too (Go does so for string keys), so an
// old record's data is never kept alive by its key. The caller holds
// sh.mu.
func (sh *shard) put(user string, f storage.Factor, r *enrollment) {
	m := sh.enrollments(f)
	if m == nil {
		if sh.otherFactors == nil {
			sh.otherFactors = map[storage.Factor]map[string]*enrollment{}
		}
		m = map[string]*enrollment{}
		sh.otherFactors[f] = m
	}
	m[r.data[:len(user)]] = r
}

// remove deletes the record of (user, f) and reports whether there was
// one. The caller holds sh.mu.
func (sh *shard) remove(user string, f storage.Factor) bool {
	m := sh.enrollments(f)
	_, ok := m[user]
	delete(m, user)
	sh.dropEmpty(f, m)
	return ok
}

// dropEmpty forgets m, the map of factor f, if it is empty and f is not
// one of the two factors every shard keeps a map for. The caller holds
// sh.mu.
func (sh *shard) dropEmpty(f storage.Factor, m map[string]*enrollment) {
	if len(m) == 0 && sh.otherFactors[f] != nil {
		delete(sh.otherFactors, f)
	}
}

// factors yields each factor that has a map with that map: AUTHENTICATOR,
// EMAIL, then the others in no particular order. The caller holds sh.mu.
func (sh *shard) factors() iter.Seq2[storage.Factor, map[string]*enrollment] {
	return func(yield func(storage.Factor, map[string]*enrollment) bool) {
		if !yield(storage.Authenticator, sh.authenticators) || !yield(storage.Email, sh.emails) {
			return
		}
		for f, m := range sh.otherFactors {
			if !yield(f, m) {
				return
			}
		}
	}
}

// Enrollments implements storage.EnrollmentStore.
func (s *Store) Enrollments(ctx context.Context, user string) ([]storage.Enrollment, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return nil, err
	}
	defer sh.mu.Unlock()
	var out []storage.Enrollment
	for f, m := range sh.factors() {
		if r := m[user]; r != nil {
			out = append(out, r.export(user, f))
		}
	}
	if len(sh.otherFactors) > 0 {
		slices.SortFunc(out, func(a, b storage.Enrollment) int { return strings.Compare(string(a.Factor), string(b.Factor)) })
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
	r := sh.enrollment(user, factor)
	if r == nil {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	return r.export(user, factor), nil
}

// BeginEnrollment implements storage.EnrollmentStore. It refuses a
// secret longer than 4 GiB, far beyond storage.MaxSecretLen.
func (s *Store) BeginEnrollment(ctx context.Context, e storage.Enrollment) error {
	sh, err := s.lock(ctx, e.User)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if old := sh.enrollment(e.User, e.Factor); old != nil && old.verified {
		return storage.ErrAlreadyVerified
	}
	r, err := newPending(e)
	if err != nil {
		return err
	}
	sh.put(e.User, e.Factor, r)
	return nil
}

// ConfirmEnrollment implements storage.EnrollmentStore.
func (s *Store) ConfirmEnrollment(ctx context.Context, user string, factor storage.Factor, id string, step int64, now time.Time) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	r := sh.enrollment(user, factor)
	switch {
	case r == nil || r.id(user) != id:
		return storage.ErrNotFound
	case r.verified:
		return storage.ErrAlreadyVerified
	case !now.Before(r.expiresAt.time()):
		return storage.ErrExpired
	}
	r.verified, r.verifiedAt, r.expiresAt, r.lastStep = true, toMicros(now), noTime, step
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
	r := sh.enrollment(user, factor)
	if r == nil || !r.verified {
		return storage.ErrNotFound
	}
	if step <= r.lastStep {
		return storage.ErrStepReused
	}
	r.lastStep = step
	delete(sh.attempts, factorKey{user, factor}) // the success that ends the count, under the same lock
	return nil
}

// DeleteEnrollment implements storage.EnrollmentStore.
func (s *Store) DeleteEnrollment(ctx context.Context, user string, factor storage.Factor) (bool, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return false, err
	}
	defer sh.mu.Unlock()
	return sh.remove(user, factor), nil
}

// ResealSecret implements storage.Resealer. Like BeginEnrollment, it
// refuses a secret longer than 4 GiB.
func (s *Store) ResealSecret(ctx context.Context, user string, factor storage.Factor, id, oldKeyID string, secret []byte, keyID string) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	r := sh.enrollment(user, factor)
	if r == nil || r.id(user) != id || r.keyID.Value() != oldKeyID {
		return storage.ErrNotFound
	}
	n, err := secretLen(secret)
	if err != nil {
		return err
	}
	r.data, r.secretLen, r.keyID = user+id+string(secret), n, unique.Make(keyID)
	sh.put(user, factor, r) // the key moves to the new data
	return nil
}

package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/mfakit/mfakit/storage"
)

const enrollmentCols = "username, factor, id, verified, secret, key_id, last_step, created_at, verified_at, expires_at"

// optEnrollmentCols selects the enrollment of alias e on the optional side
// of a LEFT JOIN (zero values when there is none), then whether there is
// one, for scanEnrollment with a trailing found flag.
const optEnrollmentCols = "COALESCE(e.username, ''), COALESCE(e.factor, ''), COALESCE(e.id, ''), COALESCE(e.verified, FALSE)," +
	" e.secret, COALESCE(e.key_id, ''), COALESCE(e.last_step, 0), COALESCE(e.created_at, 0)," +
	" COALESCE(e.verified_at, 0), COALESCE(e.expires_at, 0), e.username IS NOT NULL"

type scanner interface{ Scan(...any) error }

// scanEnrollment reads a row of the columns in before, then enrollmentCols,
// then the columns in after.
func scanEnrollment(row scanner, before []any, after ...any) (storage.Enrollment, error) {
	var e storage.Enrollment
	var factor string
	var created, verified, expires int64
	dest := append(append(before[:len(before):len(before)], &e.User, &factor, &e.ID, &e.Verified, &e.Secret, &e.KeyID,
		&e.LastStep, &created, &verified, &expires), after...)
	if err := row.Scan(dest...); err != nil {
		return storage.Enrollment{}, err
	}
	e.Factor = storage.Factor(factor)
	e.CreatedAt, e.VerifiedAt, e.ExpiresAt = fromMicros(created), fromMicros(verified), fromMicros(expires)
	if len(e.Secret) == 0 {
		e.Secret = nil
	}
	return e, nil
}

// Enrollments implements storage.EnrollmentStore.
func (s *Store) Enrollments(ctx context.Context, user string) ([]storage.Enrollment, error) {
	st, err := s.prepared(ctx, s.enrollmentsQuery)
	if err != nil {
		return nil, wrap("enrollments", err)
	}
	rows, err := st.QueryContext(ctx, user)
	if err != nil {
		return nil, wrap("enrollments", err)
	}
	defer rows.Close()
	var out []storage.Enrollment
	for rows.Next() {
		e, err := scanEnrollment(rows, nil)
		if err != nil {
			return nil, wrap("enrollments", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("enrollments", err)
	}
	return out, nil
}

// Enrollment implements storage.EnrollmentStore.
func (s *Store) Enrollment(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, error) {
	e, err := scanEnrollment(s.queryRow(ctx, "SELECT "+enrollmentCols+" FROM "+s.enrollments+
		" WHERE username = ? AND factor = ?", user, string(factor)), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Enrollment{}, wrap("enrollment", err)
	}
	return e, nil
}

// BeginEnrollment implements storage.EnrollmentStore. It replaces a
// pending row with one conditional UPDATE, or inserts when there is none;
// a verified row is never touched.
func (s *Store) BeginEnrollment(ctx context.Context, e storage.Enrollment) error {
	args := []any{e.ID, e.Secret, e.KeyID, micros(e.CreatedAt), micros(e.ExpiresAt), e.User, string(e.Factor)}
	for range 5 {
		n, err := s.exec(ctx, "begin enrollment", "UPDATE "+s.enrollments+
			" SET id = ?, secret = ?, key_id = ?, created_at = ?, expires_at = ?, verified = FALSE, last_step = 0, verified_at = 0"+
			" WHERE username = ? AND factor = ? AND verified = FALSE", args...)
		if err != nil || n == 1 {
			return err
		}
		n, err = s.exec(ctx, "begin enrollment", s.dialect.insertIgnore(s.enrollments, enrollmentCols, "username, factor"),
			e.User, string(e.Factor), e.ID, false, e.Secret, e.KeyID, 0, micros(e.CreatedAt), 0, micros(e.ExpiresAt))
		if err != nil || n == 1 {
			return err
		}
		// A row exists that the UPDATE did not match: verified, or inserted
		// by a concurrent call just now, or (MySQL counts only rows it
		// changed) already exactly e, as after a retry of a call whose
		// success was lost with its connection. Look, and go round again
		// if pending.
		cur, err := s.Enrollment(ctx, e.User, e.Factor)
		if err == nil && cur.Verified {
			return storage.ErrAlreadyVerified
		}
		if err == nil && samePending(cur, e) {
			return nil
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return wrap("begin enrollment", errContention)
}

// samePending reports whether the pending enrollment cur is what
// BeginEnrollment(e) writes.
func samePending(cur, e storage.Enrollment) bool {
	return cur.ID == e.ID && bytes.Equal(cur.Secret, e.Secret) && cur.KeyID == e.KeyID && cur.LastStep == 0 &&
		micros(cur.CreatedAt) == micros(e.CreatedAt) && micros(cur.ExpiresAt) == micros(e.ExpiresAt) && cur.VerifiedAt.IsZero()
}

// ConfirmEnrollment implements storage.EnrollmentStore with one
// conditional UPDATE; a second read only explains a refusal.
func (s *Store) ConfirmEnrollment(ctx context.Context, user string, factor storage.Factor, id string, step int64, now time.Time) error {
	n, err := s.exec(ctx, "confirm enrollment", "UPDATE "+s.enrollments+
		" SET verified = TRUE, verified_at = ?, expires_at = 0, last_step = ?"+
		" WHERE username = ? AND factor = ? AND id = ? AND verified = FALSE AND expires_at > ?",
		micros(now), step, user, string(factor), id, micros(now))
	if err != nil || n == 1 {
		return err
	}
	cur, err := s.Enrollment(ctx, user, factor)
	switch {
	case err != nil:
		return err
	case cur.ID != id:
		return storage.ErrNotFound
	case cur.Verified:
		return storage.ErrAlreadyVerified
	}
	return storage.ErrExpired
}

// AcceptStep implements storage.EnrollmentStore. The step guard is one
// conditional UPDATE (last_step < step), so concurrent callers cannot both
// succeed, and the failure state of the factor is cleared with it:
//
//   - PostgreSQL: one statement, the UPDATE with an UPDATE that zeroes
//     the failure state row in a data-modifying CTE (batched, see
//     batch.go); a zeroed row reads as no state, and DeleteExpired drops
//     it;
//   - MySQL: one multi-table UPDATE that also zeroes the failure state row;
//   - SQLite: the UPDATE and a DELETE in one transaction.
//
// A refusal costs a second read, to tell ErrStepReused from ErrNotFound.
func (s *Store) AcceptStep(ctx context.Context, user string, factor storage.Factor, step int64) error {
	var ok bool
	var err error
	if s.dialect == MySQL {
		ok, err = s.acceptStepMySQL(ctx, user, factor, step)
	} else {
		ok, err = s.steps.do(ctx, stepIn{user, factor, step})
	}
	if err != nil || ok {
		return err
	}
	cur, err := s.Enrollment(ctx, user, factor)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && !cur.Verified):
		return storage.ErrNotFound
	case err != nil:
		return err
	}
	return storage.ErrStepReused
}

func (s *Store) acceptStepMySQL(ctx context.Context, user string, factor storage.Factor, step int64) (bool, error) {
	for attempt := 0; ; attempt++ {
		// Affected rows count both tables: at least 1 iff the step was accepted.
		n, err := s.exec(ctx, "accept step", "UPDATE "+s.enrollments+" e LEFT JOIN "+s.attempts+
			" a ON a.username = e.username AND a.factor = e.factor"+
			" SET e.last_step = ?, a.failures = 0, a.locked_until = 0, a.last_at = 0"+
			" WHERE e.username = ? AND e.factor = ? AND e.verified = TRUE AND e.last_step < ?",
			step, user, string(factor), step)
		if deadlocked(err) && attempt < 3 && ctx.Err() == nil {
			continue
		}
		return n > 0, err
	}
}

// DeleteEnrollment implements storage.EnrollmentStore.
func (s *Store) DeleteEnrollment(ctx context.Context, user string, factor storage.Factor) (bool, error) {
	n, err := s.exec(ctx, "delete enrollment", "DELETE FROM "+s.enrollments+" WHERE username = ? AND factor = ?",
		user, string(factor))
	return n > 0, err
}

// ResealSecret implements storage.Resealer with one conditional UPDATE.
func (s *Store) ResealSecret(ctx context.Context, user string, factor storage.Factor, id, oldKeyID string, secret []byte, keyID string) error {
	n, err := s.exec(ctx, "reseal secret", "UPDATE "+s.enrollments+" SET secret = ?, key_id = ?"+
		" WHERE username = ? AND factor = ? AND id = ? AND key_id = ?", secret, keyID, user, string(factor), id, oldKeyID)
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

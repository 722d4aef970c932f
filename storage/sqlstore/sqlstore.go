// Package sqlstore is a storage.Store on database/sql for SQLite, PostgreSQL
// and MySQL/MariaDB. The host brings the driver and the *sql.DB; several
// app instances sharing one database behave as one (replay protection and
// lockout counts hold across them), because every atomic operation of the
// Store contract is a single conditional statement or a transaction that
// locks the row.
//
//	db, err := sql.Open("pgx", "postgres://app@db/app")
//	store, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.Options{})
//	err = store.Migrate(ctx) // at start-up; idempotent, safe from many instances
//
// SQLite needs a busy timeout and immediate write transactions so that
// concurrent writers wait instead of failing; with modernc.org/sqlite:
//
//	sql.Open("sqlite", "file:mfa.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
//
// Expired pending enrollments, codes and idle send-throttle rows stay until
// DeleteExpired removes them; schedule it (say, hourly).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// TablePrefix starts every table name. Default "mfakit_". Letters,
	// digits and '_' only, at most 40 bytes.
	TablePrefix string
	// Now is the clock for migration records. Default time.Now.
	Now func() time.Time
}

// Store is a storage.Store on a *sql.DB. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect Dialect
	prefix  string
	now     func() time.Time

	enrollments, codes, attempts, sends, recovery, versions string

	stmts sync.Map // query → *sql.Stmt
	// steps and states batch the verify hot path on PostgreSQL.
	steps  *batcher[stepIn, bool]
	states *batcher[stateIn, stateOut]
}

// prepared returns the prepared statement of query (written with ?
// placeholders), preparing it once. database/sql re-prepares it on each
// pooled connection as needed; it saves MySQL a prepare and a close per
// call and lets every driver skip re-parsing.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, query)
	if err != nil {
		// Let the error surface through Scan, as QueryRow would.
		return s.db.QueryRowContext(ctx, s.q(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// Close releases the prepared statements. The *sql.DB stays open: it is
// the host's.
func (s *Store) Close() error {
	s.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		s.stmts.Delete(k)
		return true
	})
	return nil
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.Cleaner       = (*Store)(nil)
	_ storage.RecoveryStore = (*Store)(nil)
	_ storage.Resealer      = (*Store)(nil)
	_ storage.SendReleaser  = (*Store)(nil)
	_ storage.StateReader   = (*Store)(nil)
)

var prefixPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,39}$`)

// New returns a Store on db. It does not touch the database; call Migrate
// before first use.
func New(db *sql.DB, dialect Dialect, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if !dialect.valid() {
		return nil, fmt.Errorf("sqlstore: unknown dialect %v", dialect)
	}
	if opts.TablePrefix == "" {
		opts.TablePrefix = "mfakit_"
	}
	if !prefixPattern.MatchString(opts.TablePrefix) {
		return nil, fmt.Errorf("sqlstore: table prefix %q: letters, digits and _ only, at most 40 bytes", opts.TablePrefix)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := opts.TablePrefix
	s := &Store{db: db, dialect: dialect, prefix: p, now: opts.Now,
		enrollments: p + "enrollments", codes: p + "codes", attempts: p + "attempts",
		sends: p + "sends", recovery: p + "recovery_codes", versions: p + "schema_versions"}
	if dialect == Postgres {
		s.steps = &batcher[stepIn, bool]{key: func(c stepIn) string { return factorKey(c.user, c.factor) }, run: s.acceptSteps}
		s.states = &batcher[stateIn, stateOut]{key: func(c stateIn) string { return factorKey(c.user, c.factor) }, run: s.factorStates}
	}
	return s, nil
}

// Tables lists the store's table names, for hosts that back up or drop them.
func (s *Store) Tables() []string {
	return []string{s.enrollments, s.codes, s.attempts, s.sends, s.recovery, s.versions}
}

func (s *Store) q(query string) string { return s.dialect.rebind(query) }

// micros encodes a time as Unix microseconds; the zero time is 0.
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

func wrap(op string, err error) error {
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

const enrollmentCols = "username, factor, id, verified, secret, key_id, last_step, created_at, verified_at, expires_at"

// stateCols selects an enrollment (table alias e) and its failure state
// (alias a, joined with LEFT JOIN), for scanState.
const stateCols = "e.username, e.factor, e.id, e.verified, e.secret, e.key_id, e.last_step, e.created_at," +
	" e.verified_at, e.expires_at, COALESCE(a.failures, 0), COALESCE(a.locked_until, 0)"

// scanState reads a row of stateCols.
func scanState(row interface{ Scan(...any) error }) (storage.Enrollment, storage.Attempts, error) {
	var a storage.Attempts
	var locked int64
	e, err := scanEnrollment(row, &a.Failures, &locked)
	a.LockedUntil = fromMicros(locked)
	return e, a, err
}

// scanEnrollment reads a row of enrollmentCols, then any extra columns
// into extra.
func scanEnrollment(row interface{ Scan(...any) error }, extra ...any) (storage.Enrollment, error) {
	var e storage.Enrollment
	var factor string
	var created, verified, expires int64
	dest := append([]any{&e.User, &factor, &e.ID, &e.Verified, &e.Secret, &e.KeyID, &e.LastStep,
		&created, &verified, &expires}, extra...)
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
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+enrollmentCols+" FROM "+s.enrollments+
		" WHERE username = ? ORDER BY factor"), user)
	if err != nil {
		return nil, wrap("enrollments", err)
	}
	defer rows.Close()
	var out []storage.Enrollment
	for rows.Next() {
		e, err := scanEnrollment(rows)
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
		" WHERE username = ? AND factor = ?", user, string(factor)))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Enrollment{}, wrap("enrollment", err)
	}
	return e, nil
}

func (s *Store) exec(ctx context.Context, op, query string, args ...any) (int64, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return 0, wrap(op, err)
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap(op, err)
	}
	return n, nil
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
		n, err = s.exec(ctx, "begin enrollment", s.dialect.insertIgnore(s.enrollments,
			"username, factor, id, verified, secret, key_id, last_step, created_at, verified_at, expires_at", "username, factor"),
			e.User, string(e.Factor), e.ID, false, e.Secret, e.KeyID, 0, micros(e.CreatedAt), 0, micros(e.ExpiresAt))
		if err != nil || n == 1 {
			return err
		}
		// A row exists that the UPDATE did not match: verified, or inserted
		// by a concurrent call just now. Look, and go round again if pending.
		cur, err := s.Enrollment(ctx, e.User, e.Factor)
		if err == nil && cur.Verified {
			return storage.ErrAlreadyVerified
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return wrap("begin enrollment", errors.New("too much contention"))
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

// AcceptStep implements storage.EnrollmentStore with one conditional
// UPDATE (last_step < step), so concurrent callers cannot both succeed.
func (s *Store) AcceptStep(ctx context.Context, user string, factor storage.Factor, step int64) error {
	if s.steps != nil {
		ok, err := s.steps.do(ctx, stepIn{user, factor, step})
		if err != nil || ok {
			return err
		}
	} else {
		n, err := s.exec(ctx, "accept step", "UPDATE "+s.enrollments+" SET last_step = ?"+
			" WHERE username = ? AND factor = ? AND verified = TRUE AND last_step < ?", step, user, string(factor), step)
		if err != nil || n == 1 {
			return err
		}
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

// DeleteEnrollment implements storage.EnrollmentStore.
func (s *Store) DeleteEnrollment(ctx context.Context, user string, factor storage.Factor) (bool, error) {
	n, err := s.exec(ctx, "delete enrollment", "DELETE FROM "+s.enrollments+" WHERE username = ? AND factor = ?",
		user, string(factor))
	return n > 0, err
}

// PutCode implements storage.CodeStore.
func (s *Store) PutCode(ctx context.Context, c storage.Code) error {
	_, err := s.exec(ctx, "put code", s.dialect.upsert(s.codes, "username, purpose, hash, expires_at", "username, purpose",
		"hash = NEW(hash), expires_at = NEW(expires_at)"), c.User, c.Purpose, c.Hash, micros(c.ExpiresAt))
	return err
}

// ConsumeCode implements storage.CodeStore: one DELETE that matches user,
// purpose, hash and expiry, so of concurrent callers only one deletes it.
func (s *Store) ConsumeCode(ctx context.Context, user, purpose string, hash []byte, now time.Time) error {
	n, err := s.exec(ctx, "consume code", "DELETE FROM "+s.codes+
		" WHERE username = ? AND purpose = ? AND hash = ? AND expires_at > ?", user, purpose, hash, micros(now))
	if err != nil || n == 1 {
		return err
	}
	var expires int64
	err = s.db.QueryRowContext(ctx, s.q("SELECT expires_at FROM "+s.codes+" WHERE username = ? AND purpose = ?"),
		user, purpose).Scan(&expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storage.ErrNotFound
	case err != nil:
		return wrap("consume code", err)
	case expires > micros(now):
		return storage.ErrCodeMismatch
	}
	if _, err := s.exec(ctx, "consume code", "DELETE FROM "+s.codes+
		" WHERE username = ? AND purpose = ? AND expires_at <= ?", user, purpose, micros(now)); err != nil {
		return err
	}
	return storage.ErrExpired
}

// DeleteCode implements storage.CodeStore.
func (s *Store) DeleteCode(ctx context.Context, user, purpose string) error {
	_, err := s.exec(ctx, "delete code", "DELETE FROM "+s.codes+" WHERE username = ? AND purpose = ?", user, purpose)
	return err
}

// Attempts implements storage.AttemptStore.
func (s *Store) Attempts(ctx context.Context, user string, factor storage.Factor) (storage.Attempts, error) {
	var a storage.Attempts
	var locked int64
	err := s.queryRow(ctx, "SELECT failures, locked_until FROM "+s.attempts+
		" WHERE username = ? AND factor = ?", user, string(factor)).Scan(&a.Failures, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Attempts{}, nil
	}
	if err != nil {
		return storage.Attempts{}, wrap("attempts", err)
	}
	a.LockedUntil = fromMicros(locked)
	return a, nil
}

// RecordFailure implements storage.AttemptStore: an atomic increment
// (INSERT ... ON CONFLICT DO UPDATE ... RETURNING, or on MySQL the same
// upsert and a locking read in one transaction).
func (s *Store) RecordFailure(ctx context.Context, user string, factor storage.Factor) (int, error) {
	incr := s.dialect.upsert(s.attempts, "username, factor, failures, locked_until", "username, factor",
		"failures = OLD(failures) + 1")
	var n int
	if s.dialect != MySQL {
		err := s.queryRow(ctx, incr+" RETURNING failures", user, string(factor), 1, 0).Scan(&n)
		if err != nil {
			return 0, wrap("record failure", err)
		}
		return n, nil
	}
	err := s.inTx(ctx, "record failure", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, incr, user, string(factor), 1, 0); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT failures FROM "+s.attempts+
			" WHERE username = ? AND factor = ? FOR UPDATE", user, string(factor)).Scan(&n)
	})
	return n, err
}

// LockUntil implements storage.AttemptStore; the stored lock only grows.
func (s *Store) LockUntil(ctx context.Context, user string, factor storage.Factor, until time.Time) error {
	_, err := s.exec(ctx, "lock", s.dialect.upsert(s.attempts, "username, factor, failures, locked_until", "username, factor",
		"locked_until = "+s.dialect.greatest("OLD(locked_until)", "NEW(locked_until)")),
		user, string(factor), 0, micros(until))
	return err
}

// ResetAttempts implements storage.AttemptStore.
func (s *Store) ResetAttempts(ctx context.Context, user string, factor storage.Factor) error {
	_, err := s.exec(ctx, "reset attempts", "DELETE FROM "+s.attempts+" WHERE username = ? AND factor = ?",
		user, string(factor))
	return err
}

// ReserveSend implements storage.AttemptStore in one transaction that
// first makes sure the key's row exists and then locks it, so concurrent
// reservations queue on the row.
func (s *Store) ReserveSend(ctx context.Context, key string, now time.Time, limit storage.SendLimit) (time.Duration, error) {
	var wait time.Duration
	err := s.inTx(ctx, "reserve send", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(s.dialect.insertIgnore(s.sends, "send_key, window_start, last_send, sends", "send_key")),
			key, 0, 0, 0); err != nil {
			return err
		}
		var st storage.SendState
		var start, last int64
		if err := tx.QueryRowContext(ctx, s.q("SELECT window_start, last_send, sends FROM "+s.sends+
			" WHERE send_key = ?"+s.dialect.forUpdate()), key).Scan(&start, &last, &st.Count); err != nil {
			return err
		}
		st.WindowStart, st.Last = fromMicros(start), fromMicros(last)
		var next storage.SendState
		if next, wait = storage.NextSend(st, now, limit); wait > 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, s.q("UPDATE "+s.sends+" SET window_start = ?, last_send = ?, sends = ? WHERE send_key = ?"),
			micros(next.WindowStart), micros(next.Last), next.Count, key)
		return err
	})
	return wait, err
}

// inTx runs fn in a transaction, committing only if fn succeeds.
func (s *Store) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// DeleteExpired implements storage.Cleaner.
func (s *Store) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for _, q := range []struct {
		sql    string
		before time.Time
	}{
		{"DELETE FROM " + s.enrollments + " WHERE verified = FALSE AND expires_at < ?", cutoff},
		{"DELETE FROM " + s.codes + " WHERE expires_at < ?", cutoff},
		{"DELETE FROM " + s.sends + " WHERE last_send < ?", cutoff.Add(-storage.SendIdle)},
	} {
		n, err := s.exec(ctx, "delete expired", q.sql, micros(q.before))
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// ReplaceRecoveryCodes implements storage.RecoveryStore in one transaction.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	return s.inTx(ctx, "replace recovery codes", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM "+s.recovery+" WHERE username = ?"), user); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO "+s.recovery+" (username, hash) VALUES (?, ?)"), user, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// UseRecoveryCode implements storage.RecoveryStore with one DELETE.
func (s *Store) UseRecoveryCode(ctx context.Context, user string, hash []byte) error {
	n, err := s.exec(ctx, "use recovery code", "DELETE FROM "+s.recovery+" WHERE username = ? AND hash = ?", user, hash)
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// RecoveryCodesLeft implements storage.RecoveryStore.
func (s *Store) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM "+s.recovery+" WHERE username = ?"), user).Scan(&n); err != nil {
		return 0, wrap("recovery codes left", err)
	}
	return n, nil
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

// ReleaseSend implements storage.SendReleaser with one conditional UPDATE.
func (s *Store) ReleaseSend(ctx context.Context, key string, at time.Time) error {
	_, err := s.exec(ctx, "release send", "UPDATE "+s.sends+" SET sends = sends - 1, last_send = 0"+
		" WHERE send_key = ? AND last_send = ? AND sends > 0", key, micros(at))
	return err
}

// FactorState implements storage.StateReader: the enrollment and its
// failure state in one query; a second only when there is no enrollment.
func (s *Store) FactorState(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, storage.Attempts, error) {
	if s.states != nil {
		o, err := s.states.do(ctx, stateIn{user, factor})
		switch {
		case err != nil:
			return storage.Enrollment{}, storage.Attempts{}, err
		case o.found:
			return o.e, o.a, nil
		}
		a, err := s.Attempts(ctx, user, factor)
		if err != nil {
			return storage.Enrollment{}, a, err
		}
		return storage.Enrollment{}, a, storage.ErrNotFound
	}
	e, a, err := scanState(s.queryRow(ctx, "SELECT "+stateCols+" FROM "+s.enrollments+" e LEFT JOIN "+s.attempts+
		" a ON a.username = e.username AND a.factor = e.factor WHERE e.username = ? AND e.factor = ?", user, string(factor)))
	if errors.Is(err, sql.ErrNoRows) {
		if a, err = s.Attempts(ctx, user, factor); err != nil {
			return storage.Enrollment{}, a, err
		}
		return storage.Enrollment{}, a, storage.ErrNotFound
	}
	if err != nil {
		return storage.Enrollment{}, storage.Attempts{}, wrap("factor state", err)
	}
	return e, a, nil
}

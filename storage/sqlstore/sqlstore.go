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
// SQLite needs a busy timeout, WAL and immediate write transactions so
// that concurrent writers wait instead of failing; OpenSQLite opens a file
// with them (modernc.org/sqlite), or see SQLiteDSN:
//
//	db, err := sqlstore.OpenSQLite("mfa.db")
//
// The verify hot path is group-committed: on PostgreSQL the reservations
// and the accepted steps of concurrent requests go as one statement per
// batch (batch.go, pgbatch.go), the reservation committing without
// waiting for the disk as storage.Syncer allows; on SQLite they go as one
// write transaction per batch (litebatch.go). MySQL runs each call alone.
//
// Times are kept as Unix microseconds, and lockout durations are applied
// at that precision.
//
// Expired pending enrollments and codes, idle send-throttle rows and idle
// failure state stay until DeleteExpired removes them; schedule it (say,
// hourly).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
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

	enrollments, codes, attempts, sends, recovery, credentials, syncs, versions string

	stmts sync.Map // query → *sql.Stmt
	// steps and reserves batch the verify hot path on PostgreSQL (with
	// the statements acceptQuery and reserveQuery) and SQLite (a
	// transaction per batch); nil on MySQL.
	steps                     *batcher[stepIn, bool]
	reserves                  *batcher[reserveIn, reserveOut]
	acceptQuery, reserveQuery string
	// syncBatch batches Sync's statement, syncQuery, on PostgreSQL;
	// syncSlot picks the row each batch writes.
	syncBatch *batcher[struct{}, struct{}]
	syncQuery string
	syncSlot  atomic.Uint32
	// The statements of the SQLite batches (litebatch.go); factorQuery
	// serves MySQL too.
	liteReserveQuery, factorQuery, liteAcceptQuery, clearQuery string
	// enrollmentsQuery is Enrollments' statement (the status read).
	enrollmentsQuery string
}

var (
	_ storage.Store           = (*Store)(nil)
	_ storage.Cleaner         = (*Store)(nil)
	_ storage.Resealer        = (*Store)(nil)
	_ storage.SendReleaser    = (*Store)(nil)
	_ storage.ReservingReader = (*Store)(nil)
	_ storage.CredentialStore = (*Store)(nil)
	_ storage.Syncer          = (*Store)(nil)
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
		sends: p + "sends", recovery: p + "recovery_codes", credentials: p + "credentials", syncs: p + "syncs",
		versions: p + "schema_versions"}
	s.factorQuery = factorSQL(s.enrollments, s.attempts)
	s.enrollmentsQuery = "SELECT " + enrollmentCols + " FROM " + s.enrollments + " WHERE username = ? ORDER BY factor"
	stepKey := func(c stepIn) string { return factorKey(c.user, c.factor) }
	reserveKey := func(c reserveIn) string { return factorKey(c.user, c.factor) }
	switch dialect {
	case Postgres:
		s.acceptQuery, s.reserveQuery = acceptSQL(s.enrollments, s.attempts), reserveSQL(s.enrollments, s.attempts)
		s.steps = &batcher[stepIn, bool]{key: stepKey, run: s.acceptSteps}
		s.reserves = &batcher[reserveIn, reserveOut]{key: reserveKey, fit: sameLock, run: s.reserveFactors}
		s.syncQuery = "INSERT INTO " + s.syncs + " AS t (slot, n) VALUES (?, 1) ON CONFLICT (slot) DO UPDATE SET n = t.n + 1"
		s.syncBatch = &batcher[struct{}, struct{}]{run: s.writeSync}
	case SQLite:
		s.liteReserveQuery = liteReserveSQL(s.attempts)
		s.liteAcceptQuery = "UPDATE " + s.enrollments + " SET last_step = ?" +
			" WHERE username = ? AND factor = ? AND verified = TRUE AND last_step < ?"
		s.clearQuery = "DELETE FROM " + s.attempts + " WHERE username = ? AND factor = ?"
		s.steps = &batcher[stepIn, bool]{key: stepKey, run: s.acceptStepsSQLite}
		s.reserves = &batcher[reserveIn, reserveOut]{key: reserveKey, run: s.reserveFactorsSQLite}
	}
	return s, nil
}

// Tables lists the store's table names, for hosts that back up or drop them.
func (s *Store) Tables() []string {
	return []string{s.enrollments, s.codes, s.attempts, s.sends, s.recovery, s.credentials, s.syncs, s.versions}
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

func (s *Store) q(query string) string { return s.dialect.rebind(query) }

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

// execResult runs query as a prepared statement.
func (s *Store) execResult(ctx context.Context, op, query string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, wrap(op, err)
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	return res, nil
}

// exec runs query as a prepared statement and returns the rows affected.
func (s *Store) exec(ctx context.Context, op, query string, args ...any) (int64, error) {
	res, err := s.execResult(ctx, op, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap(op, err)
	}
	return n, nil
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

// deadlocked reports whether err is the database breaking a deadlock by
// rolling back the statement (PostgreSQL 40P01, MySQL 1213): a single
// statement that failed so did nothing and may be run again.
func deadlocked(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "40P01") || strings.Contains(msg, "Error 1213")
}

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

// errContention reports an operation that kept losing races.
var errContention = errors.New("too much contention")

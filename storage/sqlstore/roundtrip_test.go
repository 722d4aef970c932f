package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// TestRoundTrips counts the calls that reach the driver (statements,
// prepares, begins, commits) per operation of the verify hot path, on one
// connection with the statements already prepared. It pins the round
// trips the package documents and S26: a reservation costs the same
// whether or not the user has the enrollment, locked or not.
func TestRoundTrips(t *testing.T) {
	for _, b := range []struct {
		name                                  string
		dialect                               sqlstore.Dialect
		driver, env                           string
		reserveFactor, reserveAttempt, accept int64
		locked                                int64 // ReserveFactor of a locked factor
	}{
		// SQLite runs a batch, here of one call, in a transaction: BEGIN,
		// the upsert and the SELECT (ReserveFactor and ReserveAttempt
		// alike), COMMIT; BEGIN, UPDATE, DELETE, COMMIT.
		// A locked factor costs PostgreSQL a second statement, to read its
		// state; the others read it anyway.
		{"SQLite", sqlstore.SQLite, "sqlite", "", 4, 4, 4, 4},
		{"Postgres", sqlstore.Postgres, "pgx", testdb.PostgresEnv, 1, 1, 1, 2},
		{"MySQL", sqlstore.MySQL, "mysql", testdb.MySQLEnv, 2, 1, 1, 2},
	} {
		t.Run(b.name, func(t *testing.T) {
			dsn := testdb.SQLiteDSN(filepath.Join(t.TempDir(), "rt.db"))
			if b.env != "" {
				if dsn = os.Getenv(b.env); dsn == "" {
					t.Skipf("%s is not set", b.env)
				}
			}
			var calls atomic.Int64
			db := countingDB(t, b.driver, dsn, &calls)
			db.SetMaxOpenConns(1)
			s := newStore(t, db, b.dialect)
			ctx := context.Background()
			at := time.UnixMicro(1_700_000_000_000_000)
			for _, u := range []string{"enrolled", "warm"} {
				e := storage.Enrollment{User: u, Factor: storage.Authenticator, ID: "id", KeyID: "k", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
				if err := s.BeginEnrollment(ctx, e); err != nil {
					t.Fatal(err)
				}
				if err := s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 1, at); err != nil {
					t.Fatal(err)
				}
			}
			p := storage.LockPolicy{MaxFailures: 2, Base: time.Minute, Max: time.Hour}
			count := func(what string, fn func() error, want ...error) int64 {
				t.Helper()
				before := calls.Load()
				err := fn()
				n := calls.Load() - before
				if len(want) == 0 && err != nil || len(want) > 0 && !errors.Is(err, want[0]) {
					t.Fatalf("%s: %v, want %v", what, err, want)
				}
				return n
			}
			reserveFactor := func(u string, want ...error) func() int64 {
				return func() int64 {
					return count("ReserveFactor("+u+")", func() error {
						_, _, err := s.ReserveFactor(ctx, u, storage.Authenticator, at, p)
						return err
					}, want...)
				}
			}
			// Warm up: prepare every statement on the one connection.
			reserveFactor("warm")()
			count("AcceptStep", func() error { return s.AcceptStep(ctx, "warm", storage.Authenticator, 2) })
			reserveFactor("warm-none", storage.ErrNotFound)()
			count("ReserveAttempt", func() error {
				_, err := s.ReserveAttempt(ctx, "warm-attempt", storage.Email, at, p)
				return err
			})
			for range 2 { // and the read of a locked factor's state
				reserveFactor("warm-lock", storage.ErrNotFound)()
			}
			reserveFactor("warm-lock", storage.ErrLocked)()

			if n := reserveFactor("enrolled")(); n != b.reserveFactor {
				t.Errorf("ReserveFactor: %d calls, want %d", n, b.reserveFactor)
			}
			if n := reserveFactor("unknown", storage.ErrNotFound)(); n != b.reserveFactor {
				t.Errorf("ReserveFactor without an enrollment: %d calls, want %d as with one (S26)", n, b.reserveFactor)
			}
			if n := count("ReserveAttempt", func() error {
				_, err := s.ReserveAttempt(ctx, "attempt", storage.Email, at, p)
				return err
			}); n != b.reserveAttempt {
				t.Errorf("ReserveAttempt: %d calls, want %d", n, b.reserveAttempt)
			}
			if n := count("AcceptStep", func() error { return s.AcceptStep(ctx, "enrolled", storage.Authenticator, 2) }); n != b.accept {
				t.Errorf("AcceptStep: %d calls, want %d", n, b.accept)
			}
			// Locked, with and without an enrollment: the same again.
			reserveFactor("enrolled")() // the success cleared the count: 1
			reserveFactor("enrolled")() // 2 = MaxFailures, which locks
			reserveFactor("unknown", storage.ErrNotFound)()
			locked, lockedNone := reserveFactor("enrolled", storage.ErrLocked)(), reserveFactor("unknown", storage.ErrLocked)()
			if locked != lockedNone {
				t.Errorf("locked ReserveFactor: %d calls with an enrollment, %d without (S26)", locked, lockedNone)
			}
			if locked != b.locked {
				t.Errorf("locked ReserveFactor: %d calls, want %d", locked, b.locked)
			}
		})
	}
}

// countingDB opens a pool whose connections count the calls they pass on
// to the driver.
func countingDB(t *testing.T, name, dsn string, calls *atomic.Int64) *sql.DB {
	db, err := sql.Open(name, dsn)
	if err != nil {
		t.Fatal(err)
	}
	d := db.Driver()
	db.Close()
	var c driver.Connector = dsnConnector{d, dsn}
	if dc, ok := d.(driver.DriverContext); ok {
		if c, err = dc.OpenConnector(dsn); err != nil {
			t.Fatal(err)
		}
	}
	db = sql.OpenDB(countingConnector{c, calls})
	t.Cleanup(func() { db.Close() })
	return db
}

type dsnConnector struct {
	d   driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }

type countingConnector struct {
	driver.Connector
	calls *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{conn, c.calls}, nil
}

// countingConn passes every call on to the driver's connection, counting
// those that talk to the database.
type countingConn struct {
	driver.Conn
	calls *atomic.Int64
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.calls.Add(1)
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{st, c.calls}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.calls.Add(1)
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return countingTx{tx, c.calls}, nil
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	c.calls.Add(1)
	return q.QueryContext(ctx, query, args)
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	c.calls.Add(1)
	return e.ExecContext(ctx, query, args)
}

func (c *countingConn) CheckNamedValue(v *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

type countingTx struct {
	driver.Tx
	calls *atomic.Int64
}

func (t countingTx) Commit() error   { t.calls.Add(1); return t.Tx.Commit() }
func (t countingTx) Rollback() error { t.calls.Add(1); return t.Tx.Rollback() }

type countingStmt struct {
	driver.Stmt
	calls *atomic.Int64
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.calls.Add(1)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.calls.Add(1)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *countingStmt) CheckNamedValue(v *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

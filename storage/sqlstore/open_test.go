package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

func TestSQLiteDSN(t *testing.T) {
	const params = "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	for path, want := range map[string]string{
		"mfa.db":          "file:mfa.db" + params,
		"dir/mfa.db":      "file:dir/mfa.db" + params,
		"/var/lib/mfa.db": "file:///var/lib/mfa.db" + params,
		"//srv/mfa.db":    "file:////srv/mfa.db" + params,
		"a?b#c%d.db":      "file:a%3Fb%23c%25d.db" + params,
	} {
		if got := sqlstore.SQLiteDSN(path); got != want {
			t.Errorf("SQLiteDSN(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestOpenSQLiteOddNames checks that the file opened is the one named,
// whatever URI marks its name holds.
func TestOpenSQLiteOddNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"plain.db", "with space.db", "q?mark.db", "hash#tag.db", "pct%41.db", "pct%.db"} {
		path := filepath.Join(dir, name)
		db, err := sqlstore.OpenSQLite(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := db.Exec("CREATE TABLE t (x INTEGER)"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		db.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: the file is not where it was named: %v", name, err)
		}
	}
	// A relative path is relative to the working directory.
	t.Chdir(dir)
	db, err := sqlstore.OpenSQLite("relative.db")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, "relative.db")); err != nil {
		t.Error(err)
	}
}

func TestOpenSQLiteRejectsNonFiles(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db?mode=ro"} {
		if db, err := sqlstore.OpenSQLite(path); err == nil {
			db.Close()
			t.Errorf("OpenSQLite(%q): no error", path)
		}
	}
}

// TestOpenSQLiteSettings checks the pool and that every pooled connection,
// not only the first, has the settings.
func TestOpenSQLiteSettings(t *testing.T) {
	db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "mfa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != sqlstore.SQLiteMaxConns {
		t.Errorf("MaxOpenConnections = %d, want %d", got, sqlstore.SQLiteMaxConns)
	}
	ctx := context.Background()
	var conns []*sql.Conn
	for range sqlstore.SQLiteMaxConns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		var timeout int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || timeout != 10000 {
			t.Errorf("connection %d: journal_mode %s, busy_timeout %d; want wal, 10000", len(conns), mode, timeout)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if st := db.Stats(); st.Idle != sqlstore.SQLiteMaxConns {
		t.Errorf("%d idle connections kept, want %d", st.Idle, sqlstore.SQLiteMaxConns)
	}
}

// TestOpenSQLiteConcurrentWrites opens one file twice, as two app
// instances would, migrates it from both at once, and writes from many
// goroutines through both pools: the store's writes, and plain
// read-then-write transactions (which deadlock into SQLITE_BUSY unless
// they take the write lock when they begin). Nothing may fail.
func TestOpenSQLiteConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mfa.db")
	ctx := context.Background()
	var stores [2]*sqlstore.Store
	var dbs [2]*sql.DB
	var wg sync.WaitGroup
	errs := make(chan error, 1024)
	for i := range dbs {
		db, err := sqlstore.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs[i] = db
		if stores[i], err = sqlstore.New(db, sqlstore.SQLite, sqlstore.Options{}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := stores[i].Migrate(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	if _, err := dbs[0].Exec("CREATE TABLE counter (n INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := dbs[0].Exec("INSERT INTO counter (n) VALUES (0)"); err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 32, 20
	now := time.Now()
	policy := storage.LockPolicy{MaxFailures: 1000, Base: time.Minute, Max: time.Hour}
	for w := range workers {
		wg.Go(func() {
			s, db := stores[w%2], dbs[w%2]
			user := fmt.Sprintf("user%d@example.com", w)
			e := storage.Enrollment{User: user, Factor: storage.Authenticator, ID: "id", Secret: []byte("sealed"),
				KeyID: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.BeginEnrollment(ctx, e); err != nil {
				errs <- fmt.Errorf("BeginEnrollment: %w", err)
				return
			}
			if err := s.ConfirmEnrollment(ctx, user, e.Factor, e.ID, 1, now); err != nil {
				errs <- fmt.Errorf("ConfirmEnrollment: %w", err)
				return
			}
			for r := range rounds {
				if _, err := s.ReserveAttempt(ctx, user, e.Factor, now, policy); err != nil {
					errs <- fmt.Errorf("ReserveAttempt: %w", err)
				}
				if err := s.AcceptStep(ctx, user, e.Factor, int64(r+2)); err != nil {
					errs <- fmt.Errorf("AcceptStep: %w", err)
				}
				if err := s.ReplaceRecoveryCodes(ctx, user, [][]byte{[]byte(fmt.Sprintf("h%d", r))}); err != nil {
					errs <- fmt.Errorf("ReplaceRecoveryCodes: %w", err)
				}
				if _, err := s.Enrollments(ctx, user); err != nil {
					errs <- fmt.Errorf("Enrollments: %w", err)
				}
				if err := increment(ctx, db); err != nil {
					errs <- fmt.Errorf("read-then-write transaction: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("and %d more errors", n-5)
	}
	var count int
	if err := dbs[1].QueryRow("SELECT n FROM counter").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != workers*rounds {
		t.Errorf("counter = %d, want %d: a read-then-write transaction lost an update", count, workers*rounds)
	}
	for w := range workers {
		e, err := stores[0].Enrollment(ctx, fmt.Sprintf("user%d@example.com", w), storage.Authenticator)
		if err != nil {
			t.Fatal(err)
		}
		if !e.Verified || e.LastStep != rounds+1 {
			t.Errorf("user%d: verified %v, last step %d; want true, %d", w, e.Verified, e.LastStep, rounds+1)
		}
	}
}

// increment reads the counter and writes it back plus one in one
// transaction.
func increment(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE counter SET n = ?", n+1); err != nil {
		return err
	}
	return tx.Commit()
}

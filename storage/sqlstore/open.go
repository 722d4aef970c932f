package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sqliteParams are the connection settings the Store needs on SQLite, in
// modernc.org/sqlite's DSN syntax:
//
//   - busy_timeout: a writer that finds the database locked waits (up to
//     10 s) instead of failing at once with SQLITE_BUSY;
//   - journal_mode(WAL): readers do not block the writer, nor the writer
//     readers;
//   - _txlock=immediate: a transaction takes the write lock when it begins,
//     so two read-then-write transactions cannot deadlock on the upgrade
//     (which SQLite answers with SQLITE_BUSY at once, busy timeout or not).
//
// synchronous stays at SQLite's default (FULL): every commit is on disk
// when it returns, as the replay guard needs; NORMAL would be faster but
// may lose the last commits, accepted codes among them, on a power cut.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"

// SQLiteMaxConns is the pool size OpenSQLite sets. SQLite has one writer
// at a time: more connections only add writers that sleep in the busy
// handler (which backs off in steps of milliseconds) where database/sql
// would have handed them the next free connection in turn. A few are kept
// so that reads, which WAL lets run beside the writer, are not queued
// behind a write.
const SQLiteMaxConns = 4

// SQLiteDSN returns the data source name of the SQLite database file at
// path for the modernc.org/sqlite driver (registered as "sqlite"), with
// the settings the Store needs when several goroutines write at once: a
// busy timeout, WAL, and write transactions that take the lock when they
// begin. sqlstore imports no driver; the host does:
//
//	import _ "modernc.org/sqlite"
//
//	db, err := sql.Open("sqlite", sqlstore.SQLiteDSN("mfa.db"))
//	db.SetMaxOpenConns(sqlstore.SQLiteMaxConns) // few: one writer at a time
//	db.SetMaxIdleConns(sqlstore.SQLiteMaxConns) // keep them: no reconnects
//
// or OpenSQLite, which does all of that. path is a file name, relative or
// absolute; '%', '?' and '#' in it are escaped. It must name a file: every
// pooled connection to ":memory:" would have a database of its own (use
// storage/memstore for a store in memory).
func SQLiteDSN(path string) string {
	var b strings.Builder
	b.Grow(len("file://") + len(path) + 1 + len(sqliteParams))
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		// file:///abs: an empty authority, so that a path starting with
		// "//" is not read as a host name.
		b.WriteString("//")
	}
	for i := range len(path) {
		switch c := path[i]; c {
		case '%', '?', '#': // the URI's escape, query and fragment marks
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('?')
	b.WriteString(sqliteParams)
	return b.String()
}

// OpenSQLite opens the SQLite database file at path (created if missing)
// with SQLiteDSN through the database/sql driver registered as "sqlite",
// modernc.org/sqlite's name, which the host imports:
//
//	import _ "modernc.org/sqlite"
//
//	db, err := sqlstore.OpenSQLite("mfa.db")
//	store, err := sqlstore.New(db, sqlstore.SQLite, sqlstore.Options{})
//
// It sets the pool for SQLite: at most SQLiteMaxConns connections, all kept
// open (opening one runs the settings again, and one opening while a fresh
// file turns to WAL fails at once). It connects once before returning, so
// a wrong path, a missing driver or a driver that ignored the settings is
// reported here, and a new file is in WAL before concurrent use. The
// caller closes the *sql.DB.
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlstore: OpenSQLite(%q): want a file path (use storage/memstore for memory)", path)
	}
	if !slices.Contains(sql.Drivers(), "sqlite") {
		return nil, errors.New(`sqlstore: no database/sql driver named "sqlite": import _ "modernc.org/sqlite"`)
	}
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(SQLiteMaxConns)
	db.SetMaxIdleConns(SQLiteMaxConns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := checkSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	return db, nil
}

// checkSQLite reports whether a connection of db has the settings of
// sqliteParams that can be read back.
func checkSQLite(ctx context.Context, db *sql.DB) error {
	var mode string
	var timeout int
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") || timeout <= 0 {
		return fmt.Errorf(`the "sqlite" driver ignored the settings (journal_mode %s, busy_timeout %d): want modernc.org/sqlite`, mode, timeout)
	}
	return nil
}

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
)

// migration is one schema version: statements run in order.
type migration func(s *Store) []string

// migrations lists every schema version, oldest first. Never edit a
// released entry; append a new one.
var migrations = []migration{
	func(s *Store) []string {
		key, blob, boolean := s.dialect.types()
		engine, expiryIndex := "", ",\n\tINDEX (expires_at)"
		if s.dialect == MySQL {
			engine = " ENGINE=InnoDB"
		} else {
			expiryIndex = ""
		}
		stmts := []string{
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	username %s NOT NULL,
	factor %s NOT NULL,
	id %s NOT NULL,
	verified %s NOT NULL DEFAULT FALSE,
	secret %s,
	key_id %s NOT NULL,
	last_step BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT 0,
	verified_at BIGINT NOT NULL DEFAULT 0,
	expires_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (username, factor)%s)%s`, s.enrollments, key, key, key, boolean, blob, key, expiryIndex, engine),
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	username %s NOT NULL,
	purpose %s NOT NULL,
	hash %s NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (username, purpose)%s)%s`, s.codes, key, key, blob, expiryIndex, engine),
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	username %s NOT NULL,
	factor %s NOT NULL,
	failures INTEGER NOT NULL DEFAULT 0,
	locked_until BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (username, factor))%s`, s.attempts, key, key, engine),
			fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	send_key %s NOT NULL,
	window_start BIGINT NOT NULL DEFAULT 0,
	last_send BIGINT NOT NULL DEFAULT 0,
	sends INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (send_key))%s`, s.sends, key, engine),
		}
		if s.dialect != MySQL {
			stmts = append(stmts,
				fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s_expiry ON %s (expires_at)`, s.enrollments, s.enrollments),
				fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s_expiry ON %s (expires_at)`, s.codes, s.codes))
		}
		return stmts
	},
	func(s *Store) []string { // version 2: recovery codes
		key, blob, _ := s.dialect.types()
		hashType := blob
		if s.dialect == MySQL {
			hashType = "VARBINARY(64)"
		}
		engine := ""
		if s.dialect == MySQL {
			engine = " ENGINE=InnoDB"
		}
		return []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	username %s NOT NULL,
	hash %s NOT NULL,
	PRIMARY KEY (username, hash))%s`, s.recovery, key, hashType, engine)}
	},
	func(s *Store) []string { // version 3: failure state remembers its last reservation (last_at)
		// Rows from before get the migration time, not 0: with 0 the next
		// DeleteExpired would forget every count at once, recent ones too,
		// granting a fresh set of guesses; so they age from the upgrade on.
		// PostgreSQL and MySQL/MariaDB store a constant default of an added
		// column without rewriting the table; the default then goes back
		// to 0 (every insert sets last_at anyway). SQLite cannot change a
		// default, and migrates in one transaction: add, then update.
		at := s.now().UnixMicro()
		switch s.dialect {
		case Postgres:
			return []string{
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS last_at BIGINT NOT NULL DEFAULT %d", s.attempts, at),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN last_at SET DEFAULT 0", s.attempts),
			}
		case MySQL:
			// No IF NOT EXISTS in MySQL: a rerun after a crash between the
			// two statements meets error 1060, which migrateLocked skips.
			return []string{
				fmt.Sprintf("ALTER TABLE %s ADD COLUMN last_at BIGINT NOT NULL DEFAULT %d", s.attempts, at),
				fmt.Sprintf("ALTER TABLE %s ALTER COLUMN last_at SET DEFAULT 0", s.attempts),
			}
		}
		return []string{
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0", s.attempts),
			fmt.Sprintf("UPDATE %s SET last_at = %d", s.attempts, at),
		}
	},
	func(s *Store) []string { // version 4: room for in-place updates on PostgreSQL
		// The verify hot path updates an enrollment's last_step and its
		// failure state row on every check; no index covers those
		// columns, so PostgreSQL can update in place (HOT, no index entry
		// written) when the row's page has room. A fill factor below 100
		// leaves that room in the pages written from now on. MySQL and
		// SQLite have no such setting.
		if s.dialect != Postgres {
			return nil
		}
		return []string{
			fmt.Sprintf("ALTER TABLE %s SET (fillfactor = %d)", s.enrollments, enrollmentsFill),
			fmt.Sprintf("ALTER TABLE %s SET (fillfactor = %d)", s.attempts, attemptsFill),
		}
	},
	func(s *Store) []string { // version 5: WebAuthn credentials
		// The credential ID is the primary key: IDs are unique across
		// users (S32). On MySQL/MariaDB VARBINARY(1023) is 1023 bytes
		// whatever the character set, within InnoDB's 3072-byte key
		// limit (the DYNAMIC row format, the default since MySQL 5.7 and
		// MariaDB 10.2, which the other tables' keys need too). The index
		// on username serves Credentials and ForgetUser.
		key, blob, _ := s.dialect.types()
		id, name, data, userIndex, engine := blob, key, blob, "", ""
		if s.dialect == MySQL {
			// MySQL has no CREATE INDEX IF NOT EXISTS: the index is part
			// of the table, so a rerun after a crash skips both.
			id, name, data, userIndex, engine = "VARBINARY(1023)", "VARBINARY(64)", "BLOB", ",\n\tINDEX (username)", " ENGINE=InnoDB"
		}
		stmts := []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	id %s NOT NULL,
	username %s NOT NULL,
	name %s NOT NULL,
	data %s NOT NULL,
	sign_count BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL DEFAULT 0,
	last_used_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (id)%s)%s`, s.credentials, id, key, name, data, userIndex, engine)}
		if s.dialect != MySQL {
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s_user ON %s (username)", s.credentials, s.credentials))
		}
		return stmts
	},
	func(s *Store) []string { // version 6: Sync's rows (used on PostgreSQL)
		engine := ""
		if s.dialect == MySQL {
			engine = " ENGINE=InnoDB"
		}
		return []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	slot INTEGER NOT NULL,
	n BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (slot))%s`, s.syncs, engine)}
	},
}

// Fill factors of the tables the verify hot path updates (PostgreSQL).
var enrollmentsFill, attemptsFill = 80, 70

// SchemaVersion is the schema version this package migrates to.
var SchemaVersion = len(migrations)

// Migrate brings the schema to SchemaVersion. It is idempotent and safe to
// call from several instances at once: they serialise on a database lock
// (an advisory lock on Postgres, GET_LOCK on MySQL, an immediate
// transaction on SQLite) and each version is applied once.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateTo(ctx, len(migrations))
}

// migrateTo brings the schema to version target (tests migrate to an
// older one to check the upgrade).
func (s *Store) migrateTo(ctx context.Context, target int) error {
	for attempt := 0; ; attempt++ {
		err := s.migrateOnce(ctx, target)
		// SQLite refuses a new connection outright (no busy wait) while
		// another one switches a fresh file to WAL: try again shortly.
		if s.dialect != SQLite || err == nil || attempt == 50 || !strings.Contains(err.Error(), "database is locked") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(10+attempt*10) * time.Millisecond):
		}
	}
}

func (s *Store) migrateOnce(ctx context.Context, target int) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := s.lockSchema(ctx, conn)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: lock: %w", err)
	}
	err = s.migrateLocked(ctx, conn, target)
	if uerr := unlock(err == nil); err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	return nil
}

func (s *Store) lockSchema(ctx context.Context, conn *sql.Conn) (func(ok bool) error, error) {
	h := fnv.New64a()
	h.Write([]byte(s.prefix))
	id := int64(h.Sum64() >> 1)
	bg := context.WithoutCancel(ctx)
	switch s.dialect {
	case Postgres:
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
			return nil, err
		}
		return func(bool) error {
			_, err := conn.ExecContext(bg, "SELECT pg_advisory_unlock($1)", id)
			return err
		}, nil
	case MySQL:
		name := fmt.Sprintf("mfakit_migrate_%x", id)
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", name).Scan(&got); err != nil {
			return nil, err
		}
		if got.Int64 != 1 {
			return nil, fmt.Errorf("could not take lock %s within 60s", name)
		}
		return func(bool) error {
			_, err := conn.ExecContext(bg, "SELECT RELEASE_LOCK(?)", name)
			return err
		}, nil
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, err
	}
	return func(ok bool) error {
		if !ok {
			_, err := conn.ExecContext(bg, "ROLLBACK")
			return err
		}
		_, err := conn.ExecContext(bg, "COMMIT")
		return err
	}, nil
}

func (s *Store) migrateLocked(ctx context.Context, conn *sql.Conn, target int) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf(
		"CREATE TABLE IF NOT EXISTS %s (version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)", s.versions))
	if err != nil {
		return err
	}
	var current sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MAX(version) FROM "+s.versions).Scan(&current); err != nil {
		return err
	}
	if int(current.Int64) > len(migrations) {
		return fmt.Errorf("database schema is version %d, newer than this build's %d", current.Int64, len(migrations))
	}
	for v := int(current.Int64) + 1; v <= target; v++ {
		for _, stmt := range migrations[v-1](s) {
			_, err := conn.ExecContext(ctx, stmt)
			if err != nil && s.dialect == MySQL && strings.Contains(err.Error(), "Error 1060") {
				err = nil // duplicate column: an ADD COLUMN that ran before a crash
			}
			if err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
		}
		if _, err := conn.ExecContext(ctx, s.q("INSERT INTO "+s.versions+" (version, applied_at) VALUES (?, ?)"),
			v, s.now().UnixMicro()); err != nil {
			return fmt.Errorf("version %d: %w", v, err)
		}
	}
	return nil
}

package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/mfakit/mfakit/storage"
)

// recoveryLockWait is how long, in seconds, a MySQL replacement waits for
// another replacement of the same user's set to finish.
const recoveryLockWait = 30

// recoveryInsertRows is how many codes one INSERT stores.
const recoveryInsertRows = 100

// ReplaceRecoveryCodes implements storage.RecoveryStore in one
// transaction: a DELETE of the user's set, then an INSERT of the new one.
//
// The replacements of one user's set run one at a time, so that
// concurrent ones never merge their sets (S12). A DELETE then an INSERT
// alone would not do: under READ COMMITTED (PostgreSQL) each transaction
// deletes only the rows committed when its DELETE starts and all the new
// sets survive; under REPEATABLE READ (InnoDB) the DELETEs of an empty
// range share its gap lock and the INSERTs then deadlock. So:
//
//   - PostgreSQL: the READ COMMITTED transaction first takes a
//     transaction-level advisory lock on a 64-bit hash of the table and
//     the user (pg_advisory_xact_lock), released by the commit. The DELETE
//     that follows takes a fresh snapshot, so it sees the set of the
//     replacement that held the lock before.
//   - MySQL/MariaDB: a named lock (GET_LOCK, on the same hash) held by the
//     connection around a READ COMMITTED transaction (no gap locks, which
//     would deadlock replacements of neighbouring users), released after
//     the commit. A connection whose release fails is discarded, so the
//     server drops the lock with the session.
//   - SQLite: write transactions are exclusive already (immediate
//     transactions, see the package doc).
//
// UseRecoveryCode and RecoveryCodesLeft take no such lock: a use waits at
// most for the row locks of one short replacement transaction, and sees
// the old set or the new.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	const op = "replace recovery codes"
	replace := func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM "+s.recovery+" WHERE username = ?"), user); err != nil {
			return err
		}
		for rows := range slices.Chunk(hashes, recoveryInsertRows) {
			args := make([]any, 0, 2*len(rows))
			for _, h := range rows {
				args = append(args, user, h)
			}
			values := strings.TrimSuffix(strings.Repeat("(?, ?), ", len(rows)), ", ")
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO "+s.recovery+" (username, hash) VALUES "+values), args...); err != nil {
				return err
			}
		}
		return nil
	}
	switch s.dialect {
	case Postgres:
		return s.retryDeadlock(ctx, func() error {
			begin := func() (*sql.Tx, error) {
				return s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
			}
			return s.inTxOn(op, begin, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", s.recoveryLockID(user)); err != nil {
					return err
				}
				return replace(tx)
			})
		})
	case MySQL:
		return s.replaceLockedMySQL(ctx, op, user, replace)
	}
	return s.inTx(ctx, op, replace)
}

// replaceLockedMySQL runs replace in a READ COMMITTED transaction while
// the connection holds the user's named lock.
func (s *Store) replaceLockedMySQL(ctx context.Context, op, user string, replace func(*sql.Tx) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return wrap(op, err)
	}
	defer conn.Close()
	// The name is hex of our own making: inline it, sparing a prepare.
	name := fmt.Sprintf("'mfakit_recovery_%016x'", uint64(s.recoveryLockID(user)))
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT GET_LOCK(%s, %d)", name, recoveryLockWait)).Scan(&got); err != nil {
		return wrap(op, err)
	}
	if got.Int64 != 1 {
		return wrap(op, fmt.Errorf("%w: another replacement held lock %s for %ds", errContention, name, recoveryLockWait))
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK("+name+")"); err != nil {
			// Discard the session, and the lock with it, rather than pool
			// a connection that may still hold it. The replacement itself
			// is done (or failed) already: its error stands.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	begin := func() (*sql.Tx, error) {
		return conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	}
	return s.retryDeadlock(ctx, func() error { return s.inTxOn(op, begin, replace) })
}

// inTxOn is inTx on the transaction begin starts.
func (s *Store) inTxOn(op string, begin func() (*sql.Tx, error), fn func(*sql.Tx) error) error {
	tx, err := begin()
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

// retryDeadlock runs fn, a whole transaction, again (twice at most) when
// the database broke a deadlock by rolling it back, as with a concurrent
// ForgetUser.
func (s *Store) retryDeadlock(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if attempt == 2 || !deadlocked(err) || ctx.Err() != nil {
			return err
		}
	}
}

// recoveryLockID is the lock key of user's recovery code set: 64 bits of
// SHA-256 of the table name and the user. Two sets whose keys collide
// only wait for each other's replacements; SHA-256 makes user names
// chosen to collide hard to find.
func (s *Store) recoveryLockID(user string) int64 {
	sum := sha256.Sum256([]byte(s.recovery + "\x00" + user))
	return int64(binary.BigEndian.Uint64(sum[:8]))
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

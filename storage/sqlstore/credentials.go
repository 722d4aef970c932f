package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// The credentials table (schema version 5) has the credential ID as its
// primary key, so the database itself keeps IDs unique across users
// (S32), and an index on username for Credentials and ForgetUser.

const credentialCols = "id, username, name, data, sign_count, created_at, last_used_at"

// AddCredential implements storage.CredentialStore with one INSERT: on
// PostgreSQL and SQLite one that does nothing on a conflict of the key
// (no row inserted means the ID exists); on MySQL/MariaDB a plain one that
// fails with a duplicate-key error (its count of affected rows depends on
// the connection's client flags).
func (s *Store) AddCredential(ctx context.Context, c storage.Credential) error {
	const op = "add credential"
	args := []any{c.ID, c.User, c.Name, nonNil(c.Data), int64(c.SignCount), micros(c.CreatedAt), micros(c.LastUsedAt)}
	if s.dialect == MySQL {
		_, err := s.execResult(ctx, op, "INSERT INTO "+s.credentials+" ("+credentialCols+") VALUES (?, ?, ?, ?, ?, ?, ?)", args...)
		if err != nil && strings.Contains(err.Error(), "Error 1062") {
			return storage.ErrCredentialExists
		}
		return err
	}
	n, err := s.exec(ctx, op, "INSERT INTO "+s.credentials+" ("+credentialCols+") VALUES (?, ?, ?, ?, ?, ?, ?)"+
		" ON CONFLICT (id) DO NOTHING", args...)
	if err == nil && n == 0 {
		return storage.ErrCredentialExists
	}
	return err
}

// Credentials implements storage.CredentialStore.
func (s *Store) Credentials(ctx context.Context, user string) ([]storage.Credential, error) {
	const op = "credentials"
	st, err := s.prepared(ctx, "SELECT "+credentialCols+" FROM "+s.credentials+" WHERE username = ? ORDER BY created_at, id")
	if err != nil {
		return nil, wrap(op, err)
	}
	rows, err := st.QueryContext(ctx, user)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []storage.Credential
	for rows.Next() {
		var c storage.Credential
		var count, created, used int64
		if err := rows.Scan(&c.ID, &c.User, &c.Name, &c.Data, &count, &created, &used); err != nil {
			return nil, wrap(op, err)
		}
		c.SignCount, c.CreatedAt, c.LastUsedAt = uint32(count), fromMicros(created), fromMicros(used)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// UseCredential implements storage.CredentialStore with one conditional
// UPDATE (the sign-count rule is its WHERE clause); only when it changes
// no row does a read tell ErrNotFound from ErrSignCount.
func (s *Store) UseCredential(ctx context.Context, user string, id []byte, signCount uint32, data []byte, at time.Time) error {
	const op = "use credential"
	count := int64(signCount)
	n, err := s.exec(ctx, op, "UPDATE "+s.credentials+" SET sign_count = ?, data = ?, last_used_at = ?"+
		" WHERE username = ? AND id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))",
		count, nonNil(data), micros(at), user, id, count, min(count, 1)) // 0 or 1: PostgreSQL types that parameter int4
	if err != nil || n > 0 {
		return err
	}
	var stored int64
	err = s.queryRow(ctx, "SELECT sign_count FROM "+s.credentials+" WHERE username = ? AND id = ?", user, id).Scan(&stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storage.ErrNotFound
	case err != nil:
		return wrap(op, err)
	case count == 0 && stored == 0:
		// MySQL counts only the rows it changed: the UPDATE matched a
		// row that already held exactly these values. A stored count
		// never returns to 0, so it was 0 when the UPDATE ran.
		return nil
	}
	return storage.ErrSignCount
}

// DeleteCredential implements storage.CredentialStore with one DELETE.
func (s *Store) DeleteCredential(ctx context.Context, user string, id []byte) (bool, error) {
	n, err := s.exec(ctx, "delete credential", "DELETE FROM "+s.credentials+" WHERE username = ? AND id = ?", user, id)
	return n > 0, err
}

// nonNil returns b, or an empty slice for nil: drivers write a nil slice
// as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

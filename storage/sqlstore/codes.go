package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/mfakit/mfakit/storage"
)

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

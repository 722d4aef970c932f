package sqlstore

import (
	"context"
	"database/sql"

	"github.com/mfakit/mfakit/storage"
)

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

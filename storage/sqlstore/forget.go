package sqlstore

import (
	"context"
	"database/sql"
	"slices"

	"github.com/mfakit/mfakit/storage"
)

var _ storage.Eraser = (*Store)(nil)

// ForgetUser implements storage.Eraser in one transaction: a DELETE of
// the user's rows from the enrollments, codes, failure state and recovery
// code tables (each by the leading column of its primary key) and from
// the credentials table (by its username index), which frees the
// credentials' IDs, then of each send key's row. A reader sees the user
// whole or gone. The rows are deleted in the same table order as the
// other transactions lock them, the send keys sorted; should the database
// still break a deadlock by rolling the transaction back, it runs again
// (twice at most).
func (s *Store) ForgetUser(ctx context.Context, user string, sendKeys []string) error {
	keys := slices.Compact(slices.Sorted(slices.Values(sendKeys)))
	forget := func(tx *sql.Tx) error {
		for _, table := range []string{s.enrollments, s.codes, s.attempts, s.recovery, s.credentials} {
			if _, err := tx.ExecContext(ctx, s.q("DELETE FROM "+table+" WHERE username = ?"), user); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, s.q("DELETE FROM "+s.sends+" WHERE send_key = ?"), k); err != nil {
				return err
			}
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		err := s.inTx(ctx, "forget user", forget)
		if attempt == 2 || !deadlocked(err) || ctx.Err() != nil {
			return err
		}
	}
}

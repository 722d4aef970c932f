package sqlstore

import (
	"context"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// DeleteExpired implements storage.Cleaner: one DELETE per kind of
// record. Failure state goes once its last reservation is
// storage.AttemptIdle older than cutoff and its lock ended before cutoff.
// The failure state table has no index on its times (an index would cost
// every reservation a write), so that DELETE scans it; the rows it keeps
// are bounded by the real users active within AttemptIdle.
func (s *Store) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	if s.dialect != SQLite {
		// AcceptStep on PostgreSQL and MySQL zeroes the failure state
		// instead of deleting it. Such a row records nothing, so it is not
		// counted as removed.
		if _, err := s.exec(ctx, "delete expired", "DELETE FROM "+s.attempts+
			" WHERE failures = 0 AND locked_until = 0 AND last_at = 0"); err != nil {
			return 0, err
		}
	}
	var total int64
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"DELETE FROM " + s.enrollments + " WHERE verified = FALSE AND expires_at < ?", []any{micros(cutoff)}},
		{"DELETE FROM " + s.codes + " WHERE expires_at < ?", []any{micros(cutoff)}},
		{"DELETE FROM " + s.sends + " WHERE last_send < ?", []any{micros(cutoff.Add(-storage.SendIdle))}},
		{"DELETE FROM " + s.attempts + " WHERE last_at < ? AND locked_until < ?",
			[]any{micros(cutoff.Add(-storage.AttemptIdle)), micros(cutoff)}},
	} {
		n, err := s.exec(ctx, "delete expired", q.sql, q.args...)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// ReserveSend implements storage.AttemptStore in one transaction that
// first makes sure the key's row exists and then locks it, so concurrent
// reservations queue on the row.
func (s *Store) ReserveSend(ctx context.Context, key string, now time.Time, limit storage.SendLimit) (time.Duration, error) {
	var wait time.Duration
	err := s.inTx(ctx, "reserve send", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(s.dialect.insertIgnore(s.sends, "send_key, window_start, last_send, sends", "send_key")),
			key, 0, 0, 0); err != nil {
			return err
		}
		var st storage.SendState
		var start, last int64
		if err := tx.QueryRowContext(ctx, s.q("SELECT window_start, last_send, sends FROM "+s.sends+
			" WHERE send_key = ?"+s.dialect.forUpdate()), key).Scan(&start, &last, &st.Count); err != nil {
			return err
		}
		st.WindowStart, st.Last = fromMicros(start), fromMicros(last)
		var next storage.SendState
		if next, wait = storage.NextSend(st, now, limit); wait > 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, s.q("UPDATE "+s.sends+" SET window_start = ?, last_send = ?, sends = ? WHERE send_key = ?"),
			micros(next.WindowStart), micros(next.Last), next.Count, key)
		return err
	})
	return wait, err
}

// ReleaseSend implements storage.SendReleaser with one conditional UPDATE.
func (s *Store) ReleaseSend(ctx context.Context, key string, at time.Time) error {
	_, err := s.exec(ctx, "release send", "UPDATE "+s.sends+" SET sends = sends - 1, last_send = 0"+
		" WHERE send_key = ? AND last_send = ? AND sends > 0", key, micros(at))
	return err
}

package sqlstore

import (
	"context"
	"database/sql"
)

// SQLite group commit. SQLite keeps synchronous=FULL (see SQLiteDSN):
// every commit waits for its log to reach the disk, and SQLite has no
// group commit of its own (one writer at a time, one flush per commit).
// So the verify hot path goes through the batchers on SQLite too, with
// one flusher each: a batch is one write transaction that runs its calls'
// statements one after the other, and commits them with one flush. A
// statement that fails rolls the whole batch back and fails every call
// in it; nothing of the batch is then on record.

// rowQuerier runs a query that returns at most one row: Store.queryRow,
// or the same prepared statement in a transaction (txRow).
type rowQuerier func(ctx context.Context, query string, args ...any) *sql.Row

// txRow returns a rowQuerier that runs queries in tx, as the store's
// prepared statements where prepareAll made them (preparing one takes a
// connection of the pool, which a transaction must not wait for while it
// holds the write lock).
func (s *Store) txRow(tx *sql.Tx) rowQuerier {
	return func(ctx context.Context, query string, args ...any) *sql.Row {
		if st, ok := s.stmts.Load(query); ok {
			return tx.StmtContext(ctx, st.(*sql.Stmt)).QueryRowContext(ctx, args...)
		}
		return tx.QueryRowContext(ctx, s.q(query), args...)
	}
}

// txExec runs query in tx like txRow.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st, ok := s.stmts.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, s.q(query), args...)
}

// prepareAll prepares queries for the transactions of the batches, before
// they begin. An error leaves a query unprepared: txRow and txExec then
// run it as it is, and report its errors.
func (s *Store) prepareAll(ctx context.Context, queries ...string) {
	for _, q := range queries {
		s.prepared(ctx, q)
	}
}

// reserveFactorsSQLite is ReserveFactor (and ReserveAttempt) for a batch
// on SQLite: reserveRead for each call in one transaction. A locked
// factor's state is read in the same transaction, which holds the write
// lock: it is the state that refused the reservation, known here rather
// than read again later (settle).
func (s *Store) reserveFactorsSQLite(ctx context.Context, batch []reserveIn) ([]reserveOut, error) {
	out := make([]reserveOut, len(batch))
	s.prepareAll(ctx, s.liteReserveQuery, s.factorQuery)
	err := s.inTx(ctx, "reserve factor", func(tx *sql.Tx) error {
		row := s.txRow(tx)
		for i, c := range batch {
			o, err := s.reserveRead(ctx, row, c.user, c.factor, c.now, c.lp)
			if err != nil {
				return err
			}
			if !o.r.reserved {
				o.r = reservation{a: o.cur, known: true}
			}
			out[i] = o
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// acceptStepsSQLite is AcceptStep for a batch on SQLite, in one
// transaction: for each call the conditional UPDATE of the step and, if
// it took, the DELETE of the failure state.
func (s *Store) acceptStepsSQLite(ctx context.Context, batch []stepIn) ([]bool, error) {
	out := make([]bool, len(batch))
	s.prepareAll(ctx, s.liteAcceptQuery, s.clearQuery)
	err := s.inTx(ctx, "accept step", func(tx *sql.Tx) error {
		for i, c := range batch {
			res, err := s.txExec(ctx, tx, s.liteAcceptQuery, c.step, c.user, string(c.factor), c.step)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			out[i] = true
			if _, err := s.txExec(ctx, tx, s.clearQuery, c.user, string(c.factor)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

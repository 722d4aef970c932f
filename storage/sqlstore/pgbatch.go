package sqlstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/mfakit/mfakit/storage"
)

// The batched statements of the verify hot path on PostgreSQL. Each takes
// its calls as arrays, sorted by compareFactor, and caps the rows it
// unnests with "LIMIT $n", n being the batch's size (so the cap cuts
// nothing). Each pooled connection settles on a statement's generic plan
// after its first few runs, and keeps it until the tables' statistics
// change (an ANALYZE, which may be long in coming: autovacuum may be
// off). In that plan a LIMIT whose count is a parameter is estimated at a
// tenth of its input, one row, so every table is read by primary key,
// row by row, whatever its size at planning time. Without the cap the
// planner would see ten rows, and while a table is small it would scan
// the whole of it into a hash join: a plan kept as the table grows. And
// it would plan every small batch afresh (a custom plan, which looks
// cheaper than the generic one), at the cost of several executions.

// acceptSQL is the statement of acceptSteps: $1, $2 and $3 are the
// users, factors and steps, $4 their number.
func acceptSQL(enrollments, attempts string) string {
	return "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])" +
		" WITH ORDINALITY AS v(u, f, step, i) LIMIT $4)," +
		" acc AS (UPDATE " + enrollments + " AS t SET last_step = v.step FROM v" +
		" WHERE t.username = v.u AND t.factor = v.f AND t.verified AND t.last_step < v.step" +
		" RETURNING t.username, t.factor, v.i)," +
		" clr AS (UPDATE " + attempts + " AS a SET failures = 0, locked_until = 0, last_at = 0 FROM acc" +
		" WHERE a.username = acc.username AND a.factor = acc.factor" +
		" AND (a.failures <> 0 OR a.locked_until <> 0 OR a.last_at <> 0))" +
		" SELECT i FROM acc"
}

// reserveSQL is the statement of reserveFactors: $1 to $4 are the users,
// factors, times and first locks, $5 to $8 the policy's lockParams (min,
// base, limit, cap), $9 the number of calls. It returns a row for each
// call it reserved (scanReserved's), none for a call whose factor was
// locked: the upsert's WHERE left that row as it was. Reading the state
// of those in the same statement (a second branch joining the calls with
// the table again) cost every batch about a quarter more of PostgreSQL's
// CPU, locked factors or not; ReserveFactor reads it in a second
// statement, for the locked calls alone.
//
// It commits without waiting for the disk (synchronous_commit off for its
// own transaction: set_config's third argument), as storage.Syncer
// allows: the write that follows a right code (acceptSQL, or any other
// statement that changes a row) waits for the log to be flushed up to its
// own commit, which lies after the reservation's; after a wrong code the
// caller waits for Sync's write. So a successful verify waits for one flush,
// not two; and no answer goes out before its reservation is on disk.
func reserveSQL(enrollments, attempts string) string {
	return "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true))," +
		" v AS (SELECT v.* FROM cfg, unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])" +
		" WITH ORDINALITY AS v(u, f, ts, lock1, i) LIMIT $9)," +
		" up AS (INSERT INTO " + attempts + " AS t (username, factor, failures, locked_until, last_at)" +
		" SELECT u, f, 1, lock1, ts FROM v ORDER BY i" +
		" ON CONFLICT (username, factor) DO UPDATE SET failures = t.failures + 1," +
		" locked_until = CASE WHEN t.failures + 1 >= $5::bigint" +
		" THEN excluded.last_at + (CASE WHEN t.failures + 1 - $5::bigint >= $8::bigint THEN $7::bigint" +
		" ELSE $6::bigint << (t.failures + 1 - $5::bigint)::integer END) / 1000 ELSE t.locked_until END," +
		" last_at = excluded.last_at" +
		" WHERE t.locked_until <= excluded.last_at" +
		" RETURNING t.username, t.factor, t.failures, t.locked_until, t.last_at)" +
		" SELECT up.username, up.factor, up.failures, up.locked_until, up.last_at," +
		" COALESCE(e.id, ''), COALESCE(e.verified, FALSE), e.secret, COALESCE(e.key_id, ''), COALESCE(e.last_step, 0)," +
		" COALESCE(e.created_at, 0), COALESCE(e.verified_at, 0), COALESCE(e.expires_at, 0), e.username IS NOT NULL" +
		" FROM up LEFT JOIN " + enrollments + " e ON e.username = up.username AND e.factor = up.factor"
}

// scanReserved reads a row of reserveSQL: the user and factor, the
// failure state after the reservation, and the enrollment (found reports
// whether there is one).
func scanReserved(row scanner) (user, factor string, a storage.Attempts, e storage.Enrollment, found bool, err error) {
	var failures int
	var locked, last, created, verified, expires int64
	err = row.Scan(&user, &factor, &failures, &locked, &last,
		&e.ID, &e.Verified, &e.Secret, &e.KeyID, &e.LastStep, &created, &verified, &expires, &found)
	if err != nil || !found {
		return user, factor, attempts(failures, locked, last), storage.Enrollment{}, false, err
	}
	e.User, e.Factor = user, storage.Factor(factor)
	e.CreatedAt, e.VerifiedAt, e.ExpiresAt = fromMicros(created), fromMicros(verified), fromMicros(expires)
	if len(e.Secret) == 0 {
		e.Secret = nil
	}
	return user, factor, attempts(failures, locked, last), e, true, nil
}

type stepIn struct {
	user   string
	factor storage.Factor
	step   int64
}

// acceptSteps is AcceptStep for a batch: one statement, the conditional
// UPDATE of the steps with, in a data-modifying CTE, the clearing of the
// failure state of every enrollment it updated. It zeroes the failure
// state row instead of deleting it (a zeroed row reads as no state, see
// Attempts): the next reservation then updates that row in place, a HOT
// update that writes no index entry, where a DELETE here and an INSERT
// there would each touch the index and leave a dead row behind. It
// reports which calls it accepted, by their place in the arrays.
func (s *Store) acceptSteps(ctx context.Context, batch []stepIn) ([]bool, error) {
	order := inFactorOrder(batch, func(c stepIn) (string, storage.Factor) { return c.user, c.factor })
	n := len(batch)
	users, factors, steps := make([]string, n), make([]string, n), make([]int64, n)
	for j, i := range order {
		users[j], factors[j], steps[j] = batch[i].user, string(batch[i].factor), batch[i].step
	}
	out := make([]bool, n)
	err := retryDeadlock(ctx, func() error {
		clear(out)
		rows, err := s.db.QueryContext(ctx, s.acceptQuery, users, factors, steps, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var j int64
			if err := rows.Scan(&j); err != nil {
				return err
			}
			if j < 1 || j > int64(n) {
				return fmt.Errorf("row %d of a batch of %d", j, n)
			}
			out[order[j-1]] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("accept step", err)
	}
	return out, nil
}

type reserveIn struct {
	user   string
	factor storage.Factor
	now    int64 // µs
	lp     lockParams
}

type reserveOut struct {
	r     reservation
	cur   storage.Attempts // the state read, when r is not known
	e     storage.Enrollment
	found bool
}

// sameLock reports whether two reservations may share a batch: the
// batched statement takes one policy for all its rows.
func sameLock(a, b reserveIn) bool { return a.lp == b.lp }

// reserveFactors is ReserveFactor (and ReserveAttempt) for a batch of
// calls under one policy (sameLock): one statement, each row with its own
// time. The upsert of ReserveAttempt runs in a CTE; its ON CONFLICT
// branch takes the row's time from "excluded" and the policy from scalar
// parameters, and updates only if the factor is not locked. The rows it
// updated come back with their enrollments (read whether or not there is
// one, S26). A call without a row found its factor locked: it is reported
// neither reserved nor known, and ReserveFactor reads the state.
func (s *Store) reserveFactors(ctx context.Context, batch []reserveIn) ([]reserveOut, error) {
	order := inFactorOrder(batch, func(c reserveIn) (string, storage.Factor) { return c.user, c.factor })
	n := len(batch)
	lp := batch[0].lp
	users, factors, nows, firsts := make([]string, n), make([]string, n), make([]int64, n), make([]int64, n)
	for j, i := range order {
		c := batch[i]
		users[j], factors[j], nows[j], firsts[j] = c.user, string(c.factor), c.now, lp.firstLock(c.now)
	}
	out := make([]reserveOut, n)
	err := retryDeadlock(ctx, func() error {
		clear(out)
		rows, err := s.db.QueryContext(ctx, s.reserveQuery, users, factors, nows, firsts, lp.min, lp.base, lp.limit, lp.cap, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		got := make([]bool, n)
		for rows.Next() {
			u, f, a, e, found, err := scanReserved(rows)
			if err != nil {
				return err
			}
			j := sort.Search(n, func(j int) bool {
				return compareFactor(users[j], storage.Factor(factors[j]), u, storage.Factor(f)) >= 0
			})
			if j == n || users[j] != u || factors[j] != f {
				return fmt.Errorf("a row for a factor not in the batch")
			}
			if got[j] {
				return fmt.Errorf("two rows for one factor of the batch")
			}
			got[j] = true
			out[order[j]] = reserveOut{r: reservation{a: a, reserved: true, known: true}, e: e, found: found}
		}
		// A call without a row found its factor locked: it keeps the zero
		// reserveOut, not reserved and not known, and ReserveFactor reads
		// the state.
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("reserve factor", err)
	}
	return out, nil
}

// syncSlots is the number of rows of the syncs table that Sync's
// batches write in turn, so that two in flight (of two Stores, or two
// instances, on one database) seldom wait for each other's row lock.
const syncSlots = 4

// writeSync is Sync's batch on PostgreSQL: one statement for every call that
// waits. It writes a row (an upsert, so it writes whatever the table
// holds): a transaction that wrote nothing to the log would not wait for
// the log at its commit, even with a transaction id. This one does, with
// synchronous_commit on, up to its own commit: past every reservation
// committed before it began.
func (s *Store) writeSync(ctx context.Context, batch []struct{}) ([]struct{}, error) {
	slot := int64(s.syncSlot.Add(1) % syncSlots)
	if _, err := s.exec(ctx, "sync", s.syncQuery, slot); err != nil {
		return nil, err
	}
	return make([]struct{}, len(batch)), nil
}

// Sync implements storage.Syncer. On PostgreSQL it waits for a commit
// that flushes the log past every reservation made before the call; many
// waiting calls share one (batched). Elsewhere a reservation is durable
// when it returns, and Sync returns nil at once.
func (s *Store) Sync(ctx context.Context) error {
	if s.syncBatch == nil {
		return ctx.Err()
	}
	_, err := s.syncBatch.do(ctx, struct{}{})
	return err
}

package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// batcher is group commit for the verify hot path on PostgreSQL. A
// database does only so many statements (and, for writes, durable
// commits) a second; so while one batch is in flight, the calls that
// arrive wait and then go together as one statement. With no contention a
// call runs at once, alone. Calls with the same key go in different
// batches, so each row is touched once a batch.
type batcher[T any, R any] struct {
	key func(T) string
	run func(ctx context.Context, batch []T) ([]R, error)

	mu      sync.Mutex
	pending []*call[T, R]
	running bool
}

type call[T any, R any] struct {
	in   T
	out  R
	err  error
	done chan struct{}
}

// maxBatch bounds one statement's arrays.
const maxBatch = 256

func (b *batcher[T, R]) do(ctx context.Context, in T) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	c := &call[T, R]{in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if !b.running {
		b.running = true
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
		// The batch may still apply it: a cut-off call is allowed to have
		// happened, never to be reported as done when it was not.
		return zero, ctx.Err()
	}
}

func (b *batcher[T, R]) flush() {
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := make([]*call[T, R], 0, min(len(b.pending), maxBatch))
		var rest []*call[T, R]
		seen := make(map[string]bool, len(b.pending))
		for _, c := range b.pending {
			k := b.key(c.in)
			if seen[k] || len(batch) == maxBatch {
				rest = append(rest, c)
				continue
			}
			seen[k] = true
			batch = append(batch, c)
		}
		b.pending = rest
		b.mu.Unlock()

		ins := make([]T, len(batch))
		for i, c := range batch {
			ins[i] = c.in
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		outs, err := b.run(ctx, ins)
		cancel()
		for i, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.out = outs[i]
			}
			close(c.done)
		}
	}
}

type stepIn struct {
	user   string
	factor storage.Factor
	step   int64
}

func factorKey(user string, f storage.Factor) string { return string(f) + "\x00" + user }

// inKeyOrder returns the indexes of batch in the order of key, the order
// in which a batched statement touches (and locks) its rows: statements
// that lock rows in one order cannot deadlock each other.
func inKeyOrder[T any](batch []T, key func(T) string) []int {
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(key(batch[a]), key(batch[b])) })
	return order
}

// retryDeadlock runs fn again (at most twice) if the database broke a
// deadlock by rolling its statement back.
func retryDeadlock(ctx context.Context, fn func() error) error {
	err := fn()
	for range 2 {
		if !deadlocked(err) || ctx.Err() != nil {
			break
		}
		err = fn()
	}
	return err
}

// acceptSteps is AcceptStep for a batch: one statement over arrays, the
// conditional UPDATE of the steps with, in a data-modifying CTE, the
// DELETE of the failure state of every enrollment it updated. It reports
// which rows it updated.
func (s *Store) acceptSteps(ctx context.Context, batch []stepIn) ([]bool, error) {
	order := inKeyOrder(batch, func(c stepIn) string { return factorKey(c.user, c.factor) })
	users, factors, steps := make([]string, len(batch)), make([]string, len(batch)), make([]int64, len(batch))
	for j, i := range order {
		users[j], factors[j], steps[j] = batch[i].user, string(batch[i].factor), batch[i].step
	}
	accepted := map[string]bool{}
	err := retryDeadlock(ctx, func() error {
		clear(accepted)
		rows, err := s.db.QueryContext(ctx, "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(u, f, step)),"+
			" acc AS (UPDATE "+s.enrollments+" AS t SET last_step = v.step FROM v"+
			" WHERE t.username = v.u AND t.factor = v.f AND t.verified AND t.last_step < v.step"+
			" RETURNING t.username, t.factor),"+
			" clr AS (DELETE FROM "+s.attempts+" AS a USING acc WHERE a.username = acc.username AND a.factor = acc.factor)"+
			" SELECT username, factor FROM acc", users, factors, steps)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u, f string
			if err := rows.Scan(&u, &f); err != nil {
				return err
			}
			accepted[factorKey(u, storage.Factor(f))] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap("accept step", err)
	}
	out := make([]bool, len(batch))
	for i, c := range batch {
		out[i] = accepted[factorKey(c.user, c.factor)]
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

// reserveFactors is ReserveFactor (and ReserveAttempt) for a batch: one
// statement over arrays, each row with its own time and policy. The
// upsert of ReserveAttempt runs in a CTE; its ON CONFLICT branch reads
// the row's time and policy back from the arrays by key (a correlated
// sub-select, since only table columns pass through "excluded") and
// updates only if the factor is not locked. The rows it did not update
// (locked ones) take the stored state, and every row the enrollment, in
// left joins. Those joins see the statement's snapshot, which can predate
// the lock that stopped the upsert: such a row is reported not known and
// unlocked, and ReserveFactor runs it again.
func (s *Store) reserveFactors(ctx context.Context, batch []reserveIn) ([]reserveOut, error) {
	order := inKeyOrder(batch, func(c reserveIn) string { return factorKey(c.user, c.factor) })
	n := len(batch)
	users, factors := make([]string, n), make([]string, n)
	nows, mins, bases, limits, caps, firsts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for j, i := range order {
		c := batch[i]
		users[j], factors[j], nows[j] = c.user, string(c.factor), c.now
		mins[j], bases[j], limits[j], caps[j], firsts[j] = c.lp.min, c.lp.base, c.lp.limit, c.lp.cap, c.lp.firstLock(c.now)
	}
	out := make([]reserveOut, n)
	err := retryDeadlock(ctx, func() error {
		rows, err := s.db.QueryContext(ctx, "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[],"+
			" $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])"+
			" WITH ORDINALITY AS v(u, f, ts, mf, b, lim, cap, lock1, i)),"+
			" up AS (INSERT INTO "+s.attempts+" AS t (username, factor, failures, locked_until, last_at)"+
			" SELECT u, f, 1, lock1, ts FROM v ORDER BY i"+
			" ON CONFLICT (username, factor) DO UPDATE SET (failures, locked_until, last_at) = ("+
			" SELECT t.failures + 1, CASE WHEN t.failures + 1 >= v.mf"+
			" THEN v.ts + (CASE WHEN t.failures + 1 - v.mf >= v.cap THEN v.lim"+
			" ELSE v.b << (t.failures + 1 - v.mf)::integer END) / 1000 ELSE t.locked_until END, v.ts"+
			" FROM v WHERE v.u = excluded.username AND v.f = excluded.factor)"+
			" WHERE t.locked_until <= excluded.last_at"+
			" RETURNING t.username, t.factor, t.failures, t.locked_until, t.last_at)"+
			" SELECT v.i, v.ts, up.username IS NOT NULL, COALESCE(up.failures, a.failures, 0),"+
			" COALESCE(up.locked_until, a.locked_until, 0), COALESCE(up.last_at, a.last_at, 0), "+optEnrollmentCols+
			" FROM v LEFT JOIN up ON up.username = v.u AND up.factor = v.f"+
			" LEFT JOIN "+s.attempts+" a ON up.username IS NULL AND a.username = v.u AND a.factor = v.f"+
			" LEFT JOIN "+s.enrollments+" e ON e.username = v.u AND e.factor = v.f",
			users, factors, nows, mins, bases, limits, caps, firsts)
		if err != nil {
			return err
		}
		defer rows.Close()
		seen := 0
		for rows.Next() {
			var j, now int64
			var o reserveOut
			o.e, o.r.a, o.found, err = scanFactor(rows, &j, &now, &o.r.reserved)
			if err != nil {
				return err
			}
			// A locked factor's state is known if the snapshot shows it locked.
			o.r.known = o.r.reserved || micros(o.r.a.LockedUntil) > now
			if !o.r.known {
				o.cur, o.r.a = o.r.a, storage.Attempts{}
			}
			if j < 1 || j > int64(n) {
				return fmt.Errorf("row %d of a batch of %d", j, n)
			}
			out[order[j-1]] = o
			seen++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if seen != n {
			return fmt.Errorf("%d rows for a batch of %d", seen, n)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("reserve factor", err)
	}
	return out, nil
}

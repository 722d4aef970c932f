package sqlstore

import (
	"context"
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

// acceptSteps is AcceptStep for a batch: one conditional UPDATE over
// arrays, reporting which rows it changed.
func (s *Store) acceptSteps(ctx context.Context, batch []stepIn) ([]bool, error) {
	users, factors, steps := make([]string, len(batch)), make([]string, len(batch)), make([]int64, len(batch))
	for i, c := range batch {
		users[i], factors[i], steps[i] = c.user, string(c.factor), c.step
	}
	rows, err := s.db.QueryContext(ctx, "UPDATE "+s.enrollments+" AS t SET last_step = v.step"+
		" FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(u, f, step)"+
		" WHERE t.username = v.u AND t.factor = v.f AND t.verified AND t.last_step < v.step"+
		" RETURNING t.username, t.factor", users, factors, steps)
	if err != nil {
		return nil, wrap("accept step", err)
	}
	defer rows.Close()
	accepted := map[string]bool{}
	for rows.Next() {
		var u, f string
		if err := rows.Scan(&u, &f); err != nil {
			return nil, wrap("accept step", err)
		}
		accepted[factorKey(u, storage.Factor(f))] = true
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("accept step", err)
	}
	out := make([]bool, len(batch))
	for i, c := range batch {
		out[i] = accepted[factorKey(c.user, c.factor)]
	}
	return out, nil
}

type stateIn struct {
	user   string
	factor storage.Factor
}

type stateOut struct {
	e     storage.Enrollment
	a     storage.Attempts
	found bool
}

// factorStates is FactorState for a batch: one query over arrays.
func (s *Store) factorStates(ctx context.Context, batch []stateIn) ([]stateOut, error) {
	users, factors := make([]string, len(batch)), make([]string, len(batch))
	for i, c := range batch {
		users[i], factors[i] = c.user, string(c.factor)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+stateCols+" FROM unnest($1::text[], $2::text[]) AS v(u, f) JOIN "+s.enrollments+" e ON e.username = v.u AND e.factor = v.f"+
		" LEFT JOIN "+s.attempts+" a ON a.username = e.username AND a.factor = e.factor", users, factors)
	if err != nil {
		return nil, wrap("factor state", err)
	}
	defer rows.Close()
	found := map[string]stateOut{}
	for rows.Next() {
		o := stateOut{found: true}
		var err error
		if o.e, o.a, err = scanState(rows); err != nil {
			return nil, wrap("factor state", err)
		}
		found[factorKey(o.e.User, o.e.Factor)] = o
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("factor state", err)
	}
	out := make([]stateOut, len(batch))
	for i, c := range batch {
		out[i] = found[factorKey(c.user, c.factor)]
	}
	return out, nil
}

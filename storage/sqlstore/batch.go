package sqlstore

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// batcher is group commit for the verify hot path on PostgreSQL and
// SQLite. A database does only so many statements (and, for writes,
// durable commits) a second; so while a batch is in flight, the calls
// that arrive wait and then go together as one statement (or, on SQLite,
// one transaction). With no contention a call runs at once, alone. Calls
// with the same key (when key is set) go in different batches, so each
// row is touched once a batch; so does a call that fit (when set) does
// not accept together with the batch's first.
//
// One batch is in flight at a time: a call joins the pending ones and
// starts the flusher if it is not running; the flusher takes what is
// pending whenever its batch in flight is done. On PostgreSQL that beat
// a second flusher (which overlapped one batch's wait for its commit
// with the next batch) on every path: the calls that arrive meanwhile
// make one larger batch, and a statement's fixed cost, most of what it
// costs the database, is paid fewer times (docs/SCALING.md has the
// figures). SQLite has one writer anyway.
type batcher[T any, R any] struct {
	key func(T) string
	fit func(first, c T) bool
	run func(ctx context.Context, batch []T) ([]R, error)

	mu      sync.Mutex
	pending []*call[T, R]
	running bool // the flusher runs: it will take the calls pending
}

type call[T any, R any] struct {
	in   T
	key  string
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
	if b.key != nil {
		c.key = b.key(in)
	}
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

// Calls come in waves: the callers a batch releases make their next call
// together, and the clients a batch answers send their next requests
// together. The first call of a wave would start a batch of its own, and
// the rest of the wave, ready to run a moment later, would wait for that
// batch to end. So before a batch of fewer than smallBatch calls goes,
// the flusher lets the goroutines that are ready to run go first
// (runtime.Gosched, at most maxYields times): those of the wave join the
// batch. With nothing else ready to run, that costs nothing.
const (
	smallBatch = 4
	maxYields  = 2
)

func (b *batcher[T, R]) flush() {
	yields := 0
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		if len(b.pending) < smallBatch && yields < maxYields {
			b.mu.Unlock()
			yields++
			runtime.Gosched()
			continue
		}
		yields = 0
		batch := b.take()
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

// take moves the next batch out of pending (which is not empty). b.mu is
// held.
func (b *batcher[T, R]) take() []*call[T, R] {
	batch := make([]*call[T, R], 0, min(len(b.pending), maxBatch))
	seen := make(map[string]bool, len(b.pending))
	rest := b.pending[:0]
	for _, c := range b.pending {
		if b.key != nil && seen[c.key] || len(batch) == maxBatch || len(batch) > 0 && b.fit != nil && !b.fit(batch[0].in, c.in) {
			rest = append(rest, c)
			continue
		}
		seen[c.key] = true
		batch = append(batch, c)
	}
	clear(b.pending[len(rest):])
	b.pending = rest
	return batch
}

// factorKey identifies (user, factor) in a batch.
func factorKey(user string, f storage.Factor) string { return string(f) + "\x00" + user }

// compareFactor orders (user, factor) pairs by factor, then user: the
// order of factorKey.
func compareFactor(u1 string, f1 storage.Factor, u2 string, f2 storage.Factor) int {
	if c := strings.Compare(string(f1), string(f2)); c != 0 {
		return c
	}
	return strings.Compare(u1, u2)
}

// inFactorOrder returns the indexes of batch in the order of
// compareFactor, the order in which a batched statement touches (and
// locks) its rows: statements that lock rows in one order cannot
// deadlock each other.
func inFactorOrder[T any](batch []T, key func(T) (string, storage.Factor)) []int {
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		u1, f1 := key(batch[a])
		u2, f2 := key(batch[b])
		return compareFactor(u1, f1, u2, f2)
	})
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

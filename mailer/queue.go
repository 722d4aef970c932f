package mailer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrQueueFull is returned by Queue.Send when the queue holds Size
// messages already; ErrQueueClosed after Close.
var (
	ErrQueueFull   = errors.New("mailer: queue full")
	ErrQueueClosed = errors.New("mailer: queue closed")
)

// QueueConfig tunes a Queue. Its zero value is usable.
type QueueConfig struct {
	// Workers deliver in parallel. Default 2.
	Workers int
	// Size bounds the messages waiting. Default 1000.
	Size int
	// SendTimeout bounds one delivery (retries included). Default 1 minute.
	SendTimeout time.Duration
	// Logger receives delivery failures. Default slog.Default().
	Logger *slog.Logger
}

// Queue is a Mailer that hands messages to background workers, so a
// request does not wait for SMTP. The trade-off: Send returns before
// delivery, so a failed delivery is only logged — the user sees "code
// sent", the code stays valid, and they ask again when no email comes —
// whereas a synchronous Mailer lets the kit answer 503 mail_unavailable
// and drop the code at once. Close drains the queue.
type Queue struct {
	next   Mailer
	cfg    QueueConfig
	ch     chan Message
	wg     sync.WaitGroup
	mu     sync.RWMutex
	closed bool
}

// NewQueue starts the workers that deliver through next.
func NewQueue(next Mailer, cfg QueueConfig) *Queue {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Size <= 0 {
		cfg.Size = 1000
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q := &Queue{next: next, cfg: cfg, ch: make(chan Message, cfg.Size)}
	for range cfg.Workers {
		q.wg.Add(1)
		go q.work()
	}
	return q
}

func (q *Queue) work() {
	defer q.wg.Done()
	for m := range q.ch {
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.SendTimeout)
		if err := q.next.Send(ctx, m); err != nil {
			q.cfg.Logger.Error("mailer: queued delivery failed", "err", err)
		}
		cancel()
	}
}

// Send enqueues m; it fails only when the queue is full or closed.
func (q *Queue) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrQueueClosed
	}
	select {
	case q.ch <- m:
		return nil
	default:
		return ErrQueueFull
	}
}

// Close stops taking messages and waits until the queued ones are
// delivered or ctx is done.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package faulttest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/redisstore"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// options of a run, from the environment (see the package comment).
type options struct {
	duration time.Duration // load before the fault, and at least after it
	hold     time.Duration // how long a restarted server stays down
	recovery time.Duration // how long after the server is back 5xx may go on
	speed    int
	backends []string
	dir      string

	nOK, nSentinel, nFail  int
	okWorkers, failWorkers int
	failRate               int // wrong codes a second
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration like 2s", name, v)
	}
	return d
}

func readOptions(t *testing.T) options {
	o := options{
		duration:    envDuration(t, "MFAKIT_FAULTS_DURATION", 2*time.Second),
		recovery:    envDuration(t, "MFAKIT_FAULTS_RECOVERY", 20*time.Second),
		speed:       5,
		backends:    []string{"postgres", "mysql", "redis"},
		dir:         os.Getenv("MFAKIT_FAULTS_DIR"),
		nOK:         600,
		nSentinel:   50,
		okWorkers:   8,
		failWorkers: 4,
		failRate:    300,
	}
	// Long enough that requests are sent and answered while the server is
	// down, even by a Redis client that retries for a second or so.
	o.hold = min(max(o.duration/2, 2*time.Second), 10*time.Second)
	if v := os.Getenv("MFAKIT_FAULTS_SPEED"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 30 {
			t.Fatalf("MFAKIT_FAULTS_SPEED=%q: want 1 to 30", v)
		}
		o.speed = n
	}
	if v := os.Getenv("MFAKIT_FAULTS_BACKENDS"); v != "" {
		o.backends = nil
		for _, b := range strings.Split(v, ",") {
			b = strings.TrimSpace(b)
			if !slices.Contains([]string{"postgres", "mysql", "redis"}, b) {
				t.Fatalf("MFAKIT_FAULTS_BACKENDS: unknown backend %q (want postgres, mysql, redis)", b)
			}
			o.backends = append(o.backends, b)
		}
	}
	// Enough fail users that none gets failCap wrong codes in a case that
	// goes as it should (the kit back within a few seconds). If one takes
	// longer, the wrong codes stop (the log says so) and the rest goes on.
	span := 2*o.duration + o.hold + 20*time.Second
	o.nFail = int(span.Seconds()*float64(o.failRate))/failCap + 1
	return o
}

// faultCase is one way of breaking the server.
type faultCase struct {
	name string
	stop string // the server's stop mode; "" kills the connections instead
	what string
}

var faultCases = map[string][]faultCase{
	"postgres": {
		{"restart", "fast", "pg_ctl stop -m fast, then start"},
		{"crash", "immediate", "pg_ctl stop -m immediate (no checkpoint: WAL replay at start), then start"},
		{"kill-connections", "", "pg_terminate_backend of every connection of the kit, 5 times 200 ms apart"},
	},
	"mysql": {
		{"restart", "term", "SIGTERM to mariadbd, then start"},
		{"crash", "kill", "SIGKILL to mariadbd (InnoDB recovers at start), then start"},
		{"kill-connections", "", "KILL of every connection of the kit, 5 times 200 ms apart"},
	},
	"redis": {
		{"restart", "shutdown", "SHUTDOWN, then start (AOF, appendfsync always)"},
		{"crash", "kill", "SIGKILL to redis-server, then start (AOF, appendfsync always)"},
		{"kill-connections", "", "CLIENT KILL TYPE normal, 5 times 200 ms apart"},
	},
}

func TestFaults(t *testing.T) {
	if os.Getenv("MFAKIT_FAULTS") != "1" {
		t.Skip("MFAKIT_FAULTS is not 1: skipping the fault test, which starts, restarts and kills database servers of its own (bash .ci/faults runs it)")
	}
	o := readOptions(t)
	// The drivers log every failed dial and broken connection; thousands
	// while a server is down. The host would route them; here they go.
	redis.SetLogger(quietLog{})
	mysql.SetLogger(log.New(io.Discard, "", 0))
	root := o.dir
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "mfakit-faults-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(root) })
	}
	// The PostgreSQL server runs as the postgres OS user, which must reach
	// its directory.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %s before each fault and at least %s after; servers down for %s; kit clock %d× real time; %d users with valid codes, %d sentinels, %d with wrong codes (%d a second); servers under %s",
		o.duration, o.duration, o.hold, o.speed, o.nOK, o.nSentinel, o.nFail, o.failRate, root)

	var mu sync.Mutex
	var table []string
	for _, backend := range o.backends {
		t.Run(backend, func(t *testing.T) {
			dir, err := os.MkdirTemp(root, backend+"-")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			var srv server
			switch backend {
			case "postgres":
				srv, err = newPostgres(dir)
			case "mysql":
				srv, err = newMySQL(dir)
			case "redis":
				srv, err = newRedis(dir)
			}
			if err != nil {
				t.Fatalf("MFAKIT_FAULTS=1 needs a private %s server (MFAKIT_FAULTS_BACKENDS picks the backends): %v", backend, err)
			}
			t.Cleanup(srv.close)
			if err := srv.start(); err != nil {
				t.Fatal(err)
			}
			for i, fc := range faultCases[backend] {
				t.Run(fc.name, func(t *testing.T) {
					open := func(ctx context.Context, clk *clock) (storage.Store, func(), error) {
						return openStore(ctx, backend, srv, fmt.Sprintf("f%d_", i), clk)
					}
					fault := func(clk *clock, tl *timeline) error { return injectFault(srv, fc, o.hold, clk, tl) }
					rp := runCase(t, o, fmt.Sprintf("%s/%s (%s)", backend, fc.name, fc.what), open, fault)
					rp.fail(t)
					mu.Lock()
					table = append(table, rp.line(backend, fc.name))
					mu.Unlock()
				})
			}
		})
	}
	t.Logf("summary:\n%s", strings.Join(table, "\n"))
}

type quietLog struct{}

func (quietLog) Printf(context.Context, string, ...any) {}

// openStore builds the kit's store as a host would.
func openStore(ctx context.Context, backend string, srv server, prefix string, clk *clock) (storage.Store, func(), error) {
	switch backend {
	case "postgres", "mysql":
		driver, dialect, dsn := "pgx", sqlstore.Postgres, ""
		if backend == "postgres" {
			dsn = srv.(*pgServer).dsn(dbName)
		} else {
			driver, dialect, dsn = "mysql", sqlstore.MySQL, srv.(*mysqlServer).dsn(dbName)
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		s, err := sqlstore.New(db, dialect, sqlstore.Options{TablePrefix: prefix})
		if err == nil {
			err = s.Migrate(ctx)
		}
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return s, func() { db.Close() }, nil
	case "redis":
		rdb := redis.NewClient(&redis.Options{Addr: srv.(*redisServer).addr()})
		s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: "faults:" + prefix, Now: clk.now})
		if err != nil {
			rdb.Close()
			return nil, nil, err
		}
		return s, func() { rdb.Close() }, nil
	}
	return nil, nil, errors.New("unknown backend " + backend)
}

// eventually retries fn (a read of the store) until it succeeds, for up
// to a minute.
func eventually(fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readStore reads every user's failure count and, with steps, LastStep,
// through the Store API.
func readStore(store storage.Store, pop *population, steps bool) (failures []int, last []int64, err error) {
	n := len(pop.secrets)
	failures, last = make([]int, n), make([]int64, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for u := w; u < n; u += 8 {
				err := eventually(func(ctx context.Context) error {
					a, err := store.Attempts(ctx, pop.name(u), storage.Authenticator)
					if err != nil {
						return err
					}
					failures[u] = a.Failures
					if steps {
						e, err := store.Enrollment(ctx, pop.name(u), storage.Authenticator)
						if err != nil {
							return err
						}
						last[u] = e.LastStep
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("reading %s: %w", pop.name(u), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return failures, last, <-errs
}

// injectFault breaks srv the way fc says and fills in tl.
func injectFault(srv server, fc faultCase, hold time.Duration, clk *clock, tl *timeline) error {
	tl.fault = clk.since()
	if fc.stop == "" {
		for i := range 5 {
			if i > 0 {
				time.Sleep(200 * time.Millisecond)
			}
			n, err := srv.killConns()
			if err != nil {
				return fmt.Errorf("killing connections: %v", err)
			}
			tl.killed += n
		}
		tl.up = clk.since()
		return nil
	}
	if err := srv.stop(fc.stop); err != nil {
		return fmt.Errorf("stopping the server: %v", err)
	}
	tl.down = clk.since()
	time.Sleep(hold)
	tl.startAt = clk.since()
	if err := srv.start(); err != nil {
		return fmt.Errorf("starting the server again: %v", err)
	}
	tl.up = clk.since()
	return nil
}

// runCase builds a fresh kit on the store open returns, runs the load,
// calls fault in the middle (which fills in the timeline), checks the
// records and returns the report. It logs the report; the caller judges
// the violations.
func runCase(t *testing.T, o options, name string,
	open func(ctx context.Context, clk *clock) (storage.Store, func(), error),
	fault func(clk *clock, tl *timeline) error) *report {
	ctx := context.Background()
	clk := newClock(o.speed)
	pop := &population{nOK: o.nOK, nSentinel: o.nSentinel, nFail: o.nFail}
	store, closeStore, err := open(ctx, clk)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	k, err := newKit(store, clk, pop)
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = k.enroll(ectx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	failures0, _, err := readStore(store, pop, false)
	if err != nil {
		t.Fatal(err)
	}
	enrolled := clk.since()
	c := newClient(k, 60*time.Second)
	// A step begins when the load has run for o.duration: the sentinels'
	// codes, accepted then, stay valid for two more steps, through the
	// fault; replayed as soon as the server is back, they must be refused.
	clk.alignAt(clk.since() + o.duration)
	loadStart := clk.since()
	sentinelStep := clk.stepAt(loadStart + o.duration)
	l := startLoad(c, o.okWorkers, o.failWorkers, o.failRate)
	halted := false
	defer func() {
		if !halted {
			l.halt()
		}
	}()

	time.Sleep(o.duration)
	for clk.step() < sentinelStep {
		time.Sleep(5 * time.Millisecond)
	}
	if err := acceptSentinels(c); err != nil {
		t.Errorf("before the fault: %v", err)
	}
	sentinelSteps := map[int]int64{}
	for _, r := range c.records() {
		if r.kind == kSentinel && r.status == http.StatusOK {
			sentinelSteps[int(r.user)] = r.step
		}
	}

	tl := timeline{down: -1, startAt: -1}
	if err := fault(clk, &tl); err != nil {
		t.Fatal(err)
	}

	// Replay the sentinels' codes as soon as the server is back (each
	// until it gets an answer other than a 5xx).
	var replays sync.WaitGroup
	users := make([]int, 0, len(sentinelSteps))
	for u := range sentinelSteps {
		users = append(users, u)
	}
	sort.Ints(users)
	for w := range 4 {
		replays.Go(func() {
			for i := w; i < len(users); i += 4 {
				u := users[i]
				s := sentinelSteps[u]
				for attempt := 0; clk.since()-tl.up < o.recovery; attempt++ {
					r := c.send(kSentinel, u, pop.code(u, s), s)
					if !r.is5xx() {
						break
					}
					time.Sleep(backoff(attempt))
				}
			}
		})
	}

	// Keep the load on until the kit has answered without a 5xx for a
	// while (and a 200 came after the last 5xx), or the deadline passes.
	steady := max(time.Second, o.duration/2)
	for {
		time.Sleep(50 * time.Millisecond)
		now := clk.since()
		quiet := max(tl.up, time.Duration(l.last5xx.Load()))
		if now-quiet >= steady && time.Duration(l.last200.Load()) > quiet && now-tl.up >= o.duration {
			break
		}
		if now-tl.up > o.recovery+steady {
			break // the check reports it
		}
	}
	replays.Wait()
	l.halt()
	halted = true
	halt := clk.since()

	failures, last, err := readStore(store, pop, true)
	if err != nil {
		t.Fatalf("after the run: %v", err)
	}
	// Replay every user's newest accepted code once more, after the
	// counts were read.
	newest := map[int]int64{}
	for _, r := range c.records() {
		if r.status == http.StatusOK && r.step > newest[int(r.user)] {
			newest[int(r.user)] = r.step
		}
	}
	sweep := make(chan ticket, len(newest))
	for u, s := range newest {
		sweep <- ticket{u, s}
	}
	close(sweep)
	var sweepers sync.WaitGroup
	sweepEnd := clk.since() + o.recovery
	for range 8 {
		sweepers.Go(func() {
			for t := range sweep {
				for attempt := 0; clk.since() < sweepEnd && clk.step() <= t.step+1; attempt++ {
					if r := c.send(kSweep, t.user, pop.code(t.user, t.step), t.step); !r.is5xx() {
						break
					}
					time.Sleep(backoff(attempt))
				}
			}
		})
	}
	sweepers.Wait()
	checked := clk.since()

	a := &analysis{pop: pop, clk: clk, tl: tl, recs: c.records(), deadline: o.recovery,
		st: stored{failures0: failures0, failures: failures, lastStep: last}}
	rp := a.run()
	t.Logf("%s: %s", name, rp.summary(tl))
	t.Logf("    phases: enrollment of %d users %.2fs, load %.2fs before the fault, fault %.2fs, load %.2fs after, reads and replays %.2fs",
		len(pop.secrets), enrolled.Seconds(), (tl.fault - loadStart).Seconds(), (tl.up - tl.fault).Seconds(), (halt - tl.up).Seconds(), (checked - halt).Seconds())
	t.Logf("    load: %d tickets dropped while the workers were behind, %d past their step before a worker took them, %d skipped (a code shared with a near step); the kit logged %d errors",
		l.dropped.Load(), l.stale.Load(), l.skipped.Load(), k.errLog.Load())
	if l.failCapped.Load() != 0 {
		t.Logf("    every fail user got %d wrong codes: the wrong-code load stopped early", failCap)
	}
	rp.tl = tl
	return rp
}

// violationKinds returns the kinds of violation found, sorted.
func (rp *report) violationKinds() []string {
	kinds := make([]string, 0, len(rp.violations))
	for kind := range rp.violations {
		kinds = append(kinds, kind)
	}
	sort.Strings(kinds)
	return kinds
}

// fail reports every violation as a test error.
func (rp *report) fail(t *testing.T) {
	for _, kind := range rp.violationKinds() {
		vs := rp.violations[kind]
		t.Errorf("%s: %d times, e.g.:\n    %s", kind, len(vs), strings.Join(vs[:min(len(vs), 10)], "\n    "))
	}
}

// line is the report's line in the summary table.
func (rp *report) line(backend, fault string) string {
	verdict := "ok"
	if kinds := rp.violationKinds(); len(kinds) > 0 {
		verdict = "FAILED: " + strings.Join(kinds, ", ")
	}
	down := "-"
	if rp.tl.down >= 0 {
		down = fmt.Sprintf("%.2fs", rp.downFor.Seconds())
	}
	lastErr := "-"
	if rp.lastErr >= 0 {
		lastErr = fmt.Sprintf("%.2fs", rp.lastErr.Seconds())
	}
	return fmt.Sprintf("  %-8s %-16s %6d req %6d×200 %6d×400 %5d×5xx  down %-6s last 5xx %-6s after up  %s",
		backend, fault, rp.all.n, rp.all.ok, rp.all.invalid+rp.all.reused, rp.all.s5xx+rp.all.none, down, lastErr, verdict)
}

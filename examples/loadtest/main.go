// Command loadtest measures mfakit against two baselines in one run, side
// by side, scenario by scenario, with the same number of concurrent
// keep-alive HTTP clients:
//
//   - the kit: mfa.Service on the chosen store, served by httpx, with
//     -users users enrolled in an authenticator (and as many more who
//     only enroll QR codes);
//   - the bare baseline: a net/http handler that checks the Authorization
//     header, decodes the same JSON body and answers 200 with a constant
//     body: the cost of HTTP alone;
//   - the database baseline (every backend but memory): the same bare
//     handler plus the minimal statement(s) each route needs, through the
//     same driver and the same kind of pool as the kit, on tables (keys)
//     of its own with the kit's shape, pre-populated for the same users:
//     mfaDetails reads the user's row (SELECT … WHERE username, or
//     HGETALL); a good check records a newer step (one conditional
//     UPDATE … WHERE last_step < step, or one EVALSHA of a set-if-newer
//     script), every one a successful durable write; a failed check
//     counts a failure (one INSERT … ON CONFLICT DO UPDATE SET failures
//     = failures + 1, or HINCRBY); associateQRCode writes a pending
//     enrollment (one upsert, or HSET). It is the floor for a store-backed
//     handler: no TOTP check, no encryption, no lockout logic.
//
// Each scenario runs in rounds that alternate the sides (bare baseline,
// kit, database baseline) so that drift in the machine's load hits them
// alike. On PostgreSQL both the kit's and the database baseline's tables
// get VACUUM (ANALYZE) once filled, before anything is measured, as
// pgbench does (see vacuum). The tool prints a table and, as its last
// line, one JSON object
// (Report); kit_rps / baseline_rps is ratio, kit_rps / db_baseline_rps is
// db_ratio.
//
// -conns takes one number of concurrent clients or a list of them
// ("-conns 64,256"): then every level is measured on every side, and each
// side's figures (rate, latencies, allocations, CPU) are those of the
// level at which it did best — its limit on this machine, as far as the
// levels show it. A database baseline that does better at 64 clients is
// compared at 64, a kit whose group commit does better at 256 at 256. The
// report gives the level of each side's best (kit_conns, baseline_conns,
// db_baseline_conns) and every level's rates (levels), so a comparison at
// one level stays at hand. verify_ok splits its users between the levels,
// so -users must cover the codes of all of them.
//
// With -external the HTTP clients run in a separate process: the tool
// starts itself again as a client, writes it one Job at a time (server URL,
// request list, expected statuses, connections, duration) as JSON on its
// standard input and reads each job's Outcome back from its standard
// output. Each request list is sent once, on its own, before the CPU
// sample of the first job that runs it (Job.Hold). The measured process
// then only serves: the clients' CPU time, allocations and garbage
// collection are no longer paid inside it, and its allocations per
// request are the servers' own. Both processes still share the machine's
// cores, as with any load generator on the same host. Without -external
// (the default, so that earlier scripts and figures stay comparable) the
// clients run in the measured process, and allocations per request
// include theirs.
//
//	cd examples
//	go run ./loadtest -external -backend memory -conns 64 -duration 3s -users 40000
//	go run ./loadtest -external -backend memory -conns 64,256 -users 120000
//	MFAKIT_POSTGRES_DSN=postgres://… go run ./loadtest -external -backend postgres
//	MFAKIT_REDIS_ADDR=127.0.0.1:6379 go run ./loadtest -external -backend redis
//	go run ./loadtest -external -backend sqlite -users 7000
//
// verify_ok spends two codes per enrolled user (those of the current and
// the next step), so -users must cover about the kit's rps × duration / 2
// for each level; when the codes run out the scenario stops early and
// says so.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

type options struct {
	backend   string
	duration  time.Duration
	conns     []int // concurrency levels, each measured on every side
	users     int
	scenarios string
	external  bool
}

func main() {
	if isClient() {
		if err := clientMain(os.Stdin, os.Stdout); err != nil {
			fail(err)
		}
		return
	}
	var o options
	flag.StringVar(&o.backend, "backend", "memory", "store: memory, sqlite, postgres ($MFAKIT_POSTGRES_DSN) or redis ($MFAKIT_REDIS_ADDR)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "time per scenario and side")
	flag.Func("conns", "concurrent keep-alive clients, or a comma-separated list of levels: each side's figures are those of its best level (default 32)",
		func(v string) (err error) { o.conns, err = parseLevels(v); return err })
	flag.IntVar(&o.users, "users", 20000, "pre-enrolled users (verify_ok needs about rps × duration / 2)")
	flag.StringVar(&o.scenarios, "scenarios", "status,verify_ok,verify_fail,enroll_qr", "scenarios to run")
	flag.BoolVar(&o.external, "external", false, "run the HTTP clients in a separate process (see the package doc)")
	flag.Parse()
	if o.conns == nil {
		o.conns = []int{32}
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fail(err)
	}
}

// fail reports err and exits. Not log.Fatal: run silences the default
// slog logger (the kit's logs), and with it the log package's output.
func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(1)
}

// Result is one scenario's figures; its JSON names are part of the tool's
// output contract. The db_ fields are those of the database baseline,
// absent for the memory backend.
type Result struct {
	Name             string  `json:"name"`
	KitRPS           float64 `json:"kit_rps"`
	BaselineRPS      float64 `json:"baseline_rps"`
	Ratio            float64 `json:"ratio"`
	DBBaselineRPS    float64 `json:"db_baseline_rps,omitempty"`
	DBRatio          float64 `json:"db_ratio,omitempty"`
	P50ms            float64 `json:"p50_ms"`
	P99ms            float64 `json:"p99_ms"`
	AllocsPerReq     float64 `json:"allocs_per_req"`
	BaselineP50ms    float64 `json:"baseline_p50_ms"`
	BaselineP99ms    float64 `json:"baseline_p99_ms"`
	BaselineAllocs   float64 `json:"baseline_allocs_per_req"`
	DBBaselineP50ms  float64 `json:"db_baseline_p50_ms,omitempty"`
	DBBaselineP99ms  float64 `json:"db_baseline_p99_ms,omitempty"`
	DBBaselineAllocs float64 `json:"db_baseline_allocs_per_req,omitempty"`
	KitOK            int64   `json:"kit_ok"`
	KitRequests      int64   `json:"kit_requests"`
	// BaselineFailed and DBBaselineFailed count the baselines' answers
	// with another status than 200 (there should be none).
	BaselineFailed   int64 `json:"baseline_failed,omitempty"`
	DBBaselineFailed int64 `json:"db_baseline_failed,omitempty"`
	// StoppedEarly is set when a round of the kit ended before its time
	// because its once-only requests ran out (verify_ok: the codes of
	// the current step, or all codes); its rate is over the time it ran.
	StoppedEarly bool `json:"stopped_early,omitempty"`
	// CPU is what a request of each side ("kit", "baseline",
	// "db_baseline") cost in CPU (see CPUCost); absent where /proc
	// cannot be read.
	CPU map[string]*CPUCost `json:"cpu_us_per_req,omitempty"`
	// KitConns, BaselineConns and DBBaselineConns are the concurrency
	// levels at which each side did best: the level whose figures the
	// side's fields above are. Levels has every level's rates.
	KitConns        int     `json:"kit_conns"`
	BaselineConns   int     `json:"baseline_conns"`
	DBBaselineConns int     `json:"db_baseline_conns,omitempty"`
	Levels          []Level `json:"levels"`
}

// Level is what each side did at one concurrency level.
type Level struct {
	Conns         int     `json:"conns"`
	KitRPS        float64 `json:"kit_rps"`
	BaselineRPS   float64 `json:"baseline_rps"`
	DBBaselineRPS float64 `json:"db_baseline_rps,omitempty"`
}

// Report is the last line the tool prints.
type Report struct {
	Backend string `json:"backend"`
	// Clients is where the HTTP clients ran: "in-process" or "external".
	Clients string `json:"clients"`
	// Conns is the first concurrency level, ConnsLevels all of them.
	Conns       int      `json:"conns"`
	ConnsLevels []int    `json:"conns_levels"`
	Duration    string   `json:"duration"`
	Users       int      `json:"users"`
	Scenarios   []Result `json:"scenarios"`
}

// side is one server of a scenario and what it is sent.
type side struct {
	name, url string
	load      *load
}

// run sends the side one job of d, measuring its CPU with m, and moves
// its list on.
func (s side) run(ctx context.Context, dr driver, m cpuMeter, scenario string, conns int, d time.Duration) (stats, error) {
	if s.load.exhausted() {
		return stats{stoppedEarly: true}, nil
	}
	if err := dr.hold(s.load); err != nil {
		return stats{}, err
	}
	before, measured := m.sample()
	st, err := dr.drive(ctx, Job{URL: s.url, Scenario: scenario, Side: s.name, List: s.load.name, OK: s.load.ok,
		Once: s.load.once, Start: s.load.pos, End: s.load.end(), Conns: conns, Duration: d}, s.load)
	if err != nil {
		return stats{}, err
	}
	s.load.advance(st.used)
	if after, ok := m.sample(); measured && ok {
		st.cpu, st.cpuRounds = after.since(before), 1
	} else {
		st.cpuMissed = 1
	}
	return st, nil
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	if len(o.conns) == 0 || slices.Min(o.conns) <= 0 || o.users <= 0 || o.duration <= 0 {
		return errors.New("-conns, -users and -duration must be positive")
	}
	slog.SetDefault(slog.New(slog.DiscardHandler))
	var dr driver = inProcess{}
	if o.external {
		e, err := startExternal()
		if err != nil {
			return err
		}
		dr = e
	}
	defer func() { err = errors.Join(err, dr.close()) }()
	k, err := newKit(ctx, o)
	if err != nil {
		return err
	}
	defer k.close()
	base, err := startBaseline()
	if err != nil {
		return err
	}
	defer base.close()
	db, err := startDBBaseline(ctx, o)
	if err != nil {
		return err
	}
	if db != nil {
		defer db.close()
	}

	levels := make([]string, len(o.conns))
	for i, c := range o.conns {
		levels[i] = strconv.Itoa(c)
	}
	report := Report{Backend: o.backend, Clients: dr.mode(), Conns: o.conns[0], ConnsLevels: o.conns,
		Duration: o.duration.String(), Users: o.users}
	fmt.Fprintf(out, "backend=%s clients=%s conns=%s duration=%s users=%d\n", o.backend, report.Clients, strings.Join(levels, ","), o.duration, o.users)
	fmt.Fprintf(out, "%-12s %10s %10s %6s %10s %8s %8s %8s %10s %12s\n", "scenario", "kit rps", "base rps", "ratio",
		"db rps", "db ratio", "p50 ms", "p99 ms", "allocs/req", "ok/requests")
	// The warm-up opens connections and fills the pools before anything
	// is measured: the kit's with mfaDetails requests, which change
	// nothing, each baseline's with the scenario's own requests.
	warm := min(warmup, o.duration/rounds)
	status, _ := k.scenario("status", 0, 1)
	meter := cpuMeterFor(o.backend, dr.clientPID())
	if _, err := (side{"kit", k.url, status.kit}).run(ctx, dr, meter, "warm-up", slices.Max(o.conns), warm); err != nil {
		return err
	}
	for _, name := range strings.Split(o.scenarios, ",") {
		name = strings.TrimSpace(name)
		// Each level is measured on every side; a side's figures are
		// those of the level at which it did best (its peak).
		var names []string    // the sides, in the order of byLevel's
		var byLevel [][]stats // [level][side]
		for li, conns := range o.conns {
			sc, ok := k.scenario(name, li, len(o.conns))
			if !ok {
				return fmt.Errorf("unknown scenario %q", name)
			}
			sides := []side{{"baseline", base.url, sc.base}, {"kit", k.url, sc.kit}}
			if db != nil {
				sides = append(sides, side{"db_baseline", db.srv.url, sc.db})
			}
			all, err := measure(ctx, dr, meter, sc.name, sides, conns, o.duration, warm)
			if err != nil {
				return err
			}
			byLevel = append(byLevel, all)
			if names == nil {
				for _, s := range sides {
					names = append(names, s.name)
				}
			}
		}
		r, kitStats := result(name, o.conns, names, byLevel)
		dbRPS, dbRatio := "-", "-"
		if db != nil {
			dbRPS, dbRatio = fmt.Sprintf("%.0f", r.DBBaselineRPS), fmt.Sprintf("%.3f", r.DBRatio)
		}
		report.Scenarios = append(report.Scenarios, r)
		fmt.Fprintf(out, "%-12s %10.0f %10.0f %6.3f %10s %8s %8.3f %8.3f %10.1f %6d/%d\n", r.Name, r.KitRPS, r.BaselineRPS, r.Ratio,
			dbRPS, dbRatio, r.P50ms, r.P99ms, r.AllocsPerReq, r.KitOK, r.KitRequests)
		if len(o.conns) > 1 {
			fmt.Fprintf(out, "  best at conns: kit %d, baseline %d", r.KitConns, r.BaselineConns)
			if db != nil {
				fmt.Fprintf(out, ", db_baseline %d", r.DBBaselineConns)
			}
			fmt.Fprint(out, "; req/s by conns:")
			for _, l := range r.Levels {
				fmt.Fprintf(out, " %d: kit %.0f, baseline %.0f", l.Conns, l.KitRPS, l.BaselineRPS)
				if db != nil {
					fmt.Fprintf(out, ", db_baseline %.0f", l.DBBaselineRPS)
				}
				fmt.Fprint(out, ";")
			}
			fmt.Fprintln(out)
		}
		if r.CPU != nil {
			fmt.Fprintf(out, "  CPU µs per request: kit %v; baseline %v", r.CPU["kit"], r.CPU["baseline"])
			if db != nil {
				fmt.Fprintf(out, "; db_baseline %v", r.CPU["db_baseline"])
			}
			fmt.Fprintln(out)
		}
		for li, all := range byLevel {
			for i, n := range names {
				if st := all[i]; st.firstFailure != "" {
					fmt.Fprintf(out, "  %s at conns %d: %d of %d answers unexpected; first failure: %s\n", n, o.conns[li],
						st.requests-st.ok, st.requests, strings.TrimSpace(st.firstFailure))
				}
			}
		}
		if kitStats.ok == 0 {
			return fmt.Errorf("scenario %s: no request succeeded (first failure: %s)", name, kitStats.firstFailure)
		}
	}
	line, err := json.Marshal(report)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(line))
	return nil
}

// rounds alternate the sides within a scenario; warmup (or a round's
// time, if shorter) opens the keep-alive connections and fills the pools
// before anything is measured.
const (
	rounds = 3
	warmup = 300 * time.Millisecond
)

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// measure runs one scenario at one concurrency level: a warm-up of each
// baseline, then rounds that alternate the sides so that drift in the
// machine's load hits them alike. It returns each side's stats, merged
// over the rounds, in the order of sides.
func measure(ctx context.Context, dr driver, meter cpuMeter, scenario string, sides []side, conns int, d, warm time.Duration) ([]stats, error) {
	for _, s := range sides {
		if s.name != "kit" {
			if _, err := s.run(ctx, dr, meter, scenario, conns, warm); err != nil {
				return nil, err
			}
		}
	}
	all := make([]stats, len(sides))
	for range rounds {
		for i, s := range sides {
			st, err := s.run(ctx, dr, meter, scenario, conns, d/rounds)
			if err != nil {
				return nil, err
			}
			all[i] = all[i].merge(st)
		}
	}
	return all, nil
}

// result builds a scenario's Result from the stats of each level
// (byLevel[level][side], the sides named by names: baseline, kit and, if
// measured, db_baseline): each side's figures are those of its best level
// by rate. It also returns the kit's stats at its best level.
func result(name string, conns []int, names []string, byLevel [][]stats) (Result, stats) {
	best := make([]int, len(names)) // per side, its best level
	r := Result{Name: name}
	for li, all := range byLevel {
		l := Level{Conns: conns[li], BaselineRPS: round(all[0].rps(), 0), KitRPS: round(all[1].rps(), 0)}
		if len(all) > 2 {
			l.DBBaselineRPS = round(all[2].rps(), 0)
		}
		r.Levels = append(r.Levels, l)
		for i := range all {
			if all[i].rps() > byLevel[best[i]][i].rps() {
				best[i] = li
			}
		}
	}
	baseStats, kitStats := byLevel[best[0]][0], byLevel[best[1]][1]
	r.KitRPS, r.BaselineRPS = round(kitStats.rps(), 0), round(baseStats.rps(), 0)
	r.P50ms, r.P99ms, r.AllocsPerReq = kitStats.percentile(50), kitStats.percentile(99), kitStats.allocsPerReq()
	r.BaselineP50ms, r.BaselineP99ms, r.BaselineAllocs = baseStats.percentile(50), baseStats.percentile(99), baseStats.allocsPerReq()
	r.KitOK, r.KitRequests, r.StoppedEarly = kitStats.ok, kitStats.requests, kitStats.stoppedEarly
	r.BaselineFailed = baseStats.requests - baseStats.ok
	r.KitConns, r.BaselineConns = conns[best[1]], conns[best[0]]
	if baseStats.rps() > 0 {
		r.Ratio = round(kitStats.rps()/baseStats.rps(), 3)
	}
	if len(names) > 2 {
		dbStats := byLevel[best[2]][2]
		r.DBBaselineRPS, r.DBBaselineP50ms, r.DBBaselineP99ms = round(dbStats.rps(), 0), dbStats.percentile(50), dbStats.percentile(99)
		r.DBBaselineAllocs, r.DBBaselineFailed = dbStats.allocsPerReq(), dbStats.requests-dbStats.ok
		r.DBBaselineConns = conns[best[2]]
		if dbStats.rps() > 0 {
			r.DBRatio = round(kitStats.rps()/dbStats.rps(), 3)
		}
	}
	for i, n := range names {
		if c := byLevel[best[i]][i].cpuPerRequest(); c != nil {
			if r.CPU == nil {
				r.CPU = map[string]*CPUCost{}
			}
			r.CPU[n] = c
		}
	}
	return r, kitStats
}

// parseLevels reads -conns: one positive number or a comma-separated
// list of them, each level once.
func parseLevels(v string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number of connections", f)
		}
		if slices.Contains(levels, n) {
			return nil, fmt.Errorf("level %d given twice", n)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

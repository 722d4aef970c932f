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
// alike. The tool prints a table and, as its last line, one JSON object
// (Report); kit_rps / baseline_rps is ratio, kit_rps / db_baseline_rps is
// db_ratio.
//
// With -external the HTTP clients run in a separate process: the tool
// starts itself again as a client, writes it one Job at a time (server URL,
// request list, expected statuses, connections, duration) as JSON on its
// standard input and reads each job's Outcome back from its standard
// output. The measured process then only serves: the clients' CPU time,
// allocations and garbage collection are no longer paid inside it, and its
// allocations per request are the servers' own. Both processes still share
// the machine's cores, as with any load generator on the same host.
// Without -external (the default, so that earlier scripts and figures stay
// comparable) the clients run in the measured process, and allocations
// per request include theirs.
//
//	cd examples
//	go run ./loadtest -external -backend memory -conns 64 -duration 3s -users 40000
//	MFAKIT_POSTGRES_DSN=postgres://… go run ./loadtest -external -backend postgres
//	MFAKIT_REDIS_ADDR=127.0.0.1:6379 go run ./loadtest -external -backend redis
//	go run ./loadtest -external -backend sqlite -users 7000
//
// verify_ok spends two codes per enrolled user (those of the current and
// the next step), so -users must cover about the kit's rps × duration / 2;
// when the codes run out the scenario stops early and says so.
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
	"strings"
	"time"
)

type options struct {
	backend   string
	duration  time.Duration
	conns     int
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
	flag.IntVar(&o.conns, "conns", 32, "concurrent keep-alive clients")
	flag.IntVar(&o.users, "users", 20000, "pre-enrolled users (verify_ok needs about rps × duration / 2)")
	flag.StringVar(&o.scenarios, "scenarios", "status,verify_ok,verify_fail,enroll_qr", "scenarios to run")
	flag.BoolVar(&o.external, "external", false, "run the HTTP clients in a separate process (see the package doc)")
	flag.Parse()
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
}

// Report is the last line the tool prints.
type Report struct {
	Backend string `json:"backend"`
	// Clients is where the HTTP clients ran: "in-process" or "external".
	Clients   string   `json:"clients"`
	Conns     int      `json:"conns"`
	Duration  string   `json:"duration"`
	Users     int      `json:"users"`
	Scenarios []Result `json:"scenarios"`
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
	if o.conns <= 0 || o.users <= 0 || o.duration <= 0 {
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

	report := Report{Backend: o.backend, Clients: dr.mode(), Conns: o.conns, Duration: o.duration.String(), Users: o.users}
	fmt.Fprintf(out, "backend=%s clients=%s conns=%d duration=%s users=%d\n", o.backend, report.Clients, o.conns, o.duration, o.users)
	fmt.Fprintf(out, "%-12s %10s %10s %6s %10s %8s %8s %8s %10s %12s\n", "scenario", "kit rps", "base rps", "ratio",
		"db rps", "db ratio", "p50 ms", "p99 ms", "allocs/req", "ok/requests")
	// The warm-up opens connections and fills the pools before anything
	// is measured: the kit's with mfaDetails requests, which change
	// nothing, each baseline's with the scenario's own requests.
	warm := min(warmup, o.duration/rounds)
	status, _ := k.scenario("status")
	meter := cpuMeterFor(o.backend, dr.clientPID())
	if _, err := (side{"kit", k.url, status.kit}).run(ctx, dr, meter, "warm-up", o.conns, warm); err != nil {
		return err
	}
	for _, name := range strings.Split(o.scenarios, ",") {
		sc, ok := k.scenario(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		sides := []side{{"baseline", base.url, sc.base}, {"kit", k.url, sc.kit}}
		if db != nil {
			sides = append(sides, side{"db_baseline", db.srv.url, sc.db})
		}
		for _, s := range sides {
			if s.name != "kit" {
				if _, err := s.run(ctx, dr, meter, sc.name, o.conns, warm); err != nil {
					return err
				}
			}
		}
		// Alternate the sides in rounds so that drift in the machine's
		// load hits them alike.
		all := make([]stats, len(sides))
		for range rounds {
			for i, s := range sides {
				st, err := s.run(ctx, dr, meter, sc.name, o.conns, o.duration/rounds)
				if err != nil {
					return err
				}
				all[i] = all[i].merge(st)
			}
		}
		baseStats, kitStats := all[0], all[1]
		r := Result{Name: sc.name, KitRPS: kitStats.rps(), BaselineRPS: baseStats.rps(),
			P50ms: kitStats.percentile(50), P99ms: kitStats.percentile(99), AllocsPerReq: kitStats.allocsPerReq(),
			BaselineP50ms: baseStats.percentile(50), BaselineP99ms: baseStats.percentile(99),
			BaselineAllocs: baseStats.allocsPerReq(), KitOK: kitStats.ok, KitRequests: kitStats.requests,
			BaselineFailed: baseStats.requests - baseStats.ok, StoppedEarly: kitStats.stoppedEarly}
		if r.BaselineRPS > 0 {
			r.Ratio = round(r.KitRPS/r.BaselineRPS, 3)
		}
		dbRPS, dbRatio := "-", "-"
		if db != nil {
			dbStats := all[2]
			r.DBBaselineRPS, r.DBBaselineP50ms, r.DBBaselineP99ms = dbStats.rps(), dbStats.percentile(50), dbStats.percentile(99)
			r.DBBaselineAllocs, r.DBBaselineFailed = dbStats.allocsPerReq(), dbStats.requests-dbStats.ok
			if r.DBBaselineRPS > 0 {
				r.DBRatio = round(r.KitRPS/r.DBBaselineRPS, 3)
			}
			r.DBBaselineRPS = round(r.DBBaselineRPS, 0)
			dbRPS, dbRatio = fmt.Sprintf("%.0f", r.DBBaselineRPS), fmt.Sprintf("%.3f", r.DBRatio)
		}
		for i, s := range sides {
			if c := all[i].cpuPerRequest(); c != nil {
				if r.CPU == nil {
					r.CPU = map[string]*CPUCost{}
				}
				r.CPU[s.name] = c
			}
		}
		r.KitRPS, r.BaselineRPS = round(r.KitRPS, 0), round(r.BaselineRPS, 0)
		report.Scenarios = append(report.Scenarios, r)
		fmt.Fprintf(out, "%-12s %10.0f %10.0f %6.3f %10s %8s %8.3f %8.3f %10.1f %6d/%d\n", r.Name, r.KitRPS, r.BaselineRPS, r.Ratio,
			dbRPS, dbRatio, r.P50ms, r.P99ms, r.AllocsPerReq, r.KitOK, r.KitRequests)
		if r.CPU != nil {
			fmt.Fprintf(out, "  CPU µs per request: kit %v; baseline %v", r.CPU["kit"], r.CPU["baseline"])
			if db != nil {
				fmt.Fprintf(out, "; db_baseline %v", r.CPU["db_baseline"])
			}
			fmt.Fprintln(out)
		}
		for i, s := range sides {
			if st := all[i]; st.firstFailure != "" {
				fmt.Fprintf(out, "  %s: %d of %d answers unexpected; first failure: %s\n", s.name,
					st.requests-st.ok, st.requests, strings.TrimSpace(st.firstFailure))
			}
		}
		if kitStats.ok == 0 {
			return fmt.Errorf("scenario %s: no request succeeded (first failure: %s)", sc.name, kitStats.firstFailure)
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

// Command loadtest measures mfakit against a bare net/http baseline in one
// process and one run: both serve on loopback listeners and are driven by
// the same number of concurrent keep-alive clients, scenario by scenario.
// It prints a table and, as its last line, one JSON object.
//
//	go run ./examples/loadtest -backend memory -duration 5s -conns 32 -users 20000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
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
}

func main() {
	var o options
	flag.StringVar(&o.backend, "backend", "memory", "store: memory, sqlite, postgres ($MFAKIT_POSTGRES_DSN) or redis ($MFAKIT_REDIS_ADDR)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "time per scenario and side")
	flag.IntVar(&o.conns, "conns", 32, "concurrent keep-alive clients")
	flag.IntVar(&o.users, "users", 20000, "pre-enrolled users (verify_ok needs about rps × duration / 2)")
	flag.StringVar(&o.scenarios, "scenarios", "status,verify_ok,verify_fail,enroll_qr", "scenarios to run")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// Result is one scenario's figures; its JSON names are part of the tool's
// output contract.
type Result struct {
	Name           string  `json:"name"`
	KitRPS         float64 `json:"kit_rps"`
	BaselineRPS    float64 `json:"baseline_rps"`
	Ratio          float64 `json:"ratio"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	AllocsPerReq   float64 `json:"allocs_per_req"`
	BaselineP50ms  float64 `json:"baseline_p50_ms"`
	BaselineP99ms  float64 `json:"baseline_p99_ms"`
	BaselineAllocs float64 `json:"baseline_allocs_per_req"`
	KitOK          int64   `json:"kit_ok"`
	KitRequests    int64   `json:"kit_requests"`
	StoppedEarly   bool    `json:"stopped_early,omitempty"`
}

// Report is the last line the tool prints.
type Report struct {
	Backend   string   `json:"backend"`
	Conns     int      `json:"conns"`
	Duration  string   `json:"duration"`
	Scenarios []Result `json:"scenarios"`
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.conns <= 0 || o.users <= 0 || o.duration <= 0 {
		return errors.New("-conns, -users and -duration must be positive")
	}
	slog.SetDefault(slog.New(slog.DiscardHandler))
	k, err := newKit(ctx, o)
	if err != nil {
		return err
	}
	defer k.close()
	base, err := startBaseline()
	if err != nil {
		return err
	}
	defer base.Close()

	report := Report{Backend: o.backend, Conns: o.conns, Duration: o.duration.String()}
	fmt.Fprintf(out, "backend=%s conns=%d duration=%s users=%d\n", o.backend, o.conns, o.duration, o.users)
	fmt.Fprintf(out, "%-12s %10s %10s %6s %8s %8s %10s %12s\n", "scenario", "kit rps", "base rps", "ratio", "p50 ms", "p99 ms", "allocs/req", "ok/requests")
	for _, name := range strings.Split(o.scenarios, ",") {
		sc, ok := k.scenario(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		// Alternate the two sides in rounds so that drift in the machine's
		// load (two cores, clients in the same process) hits both alike.
		var baseStats, kitStats stats
		drive(ctx, base.URL, sc.baselineRequest, o.conns, warmup, nil)
		for range rounds {
			baseStats = baseStats.merge(drive(ctx, base.URL, sc.baselineRequest, o.conns, o.duration/rounds, nil))
			kitStats = kitStats.merge(drive(ctx, k.url, sc.request, o.conns, o.duration/rounds, sc.exhausted))
		}
		r := Result{Name: sc.name, KitRPS: kitStats.rps(), BaselineRPS: baseStats.rps(),
			P50ms: kitStats.percentile(50), P99ms: kitStats.percentile(99), AllocsPerReq: kitStats.allocsPerReq(),
			BaselineP50ms: baseStats.percentile(50), BaselineP99ms: baseStats.percentile(99),
			BaselineAllocs: baseStats.allocsPerReq(), KitOK: kitStats.ok, KitRequests: kitStats.requests,
			StoppedEarly: kitStats.stoppedEarly}
		if r.BaselineRPS > 0 {
			r.Ratio = round(r.KitRPS/r.BaselineRPS, 3)
		}
		r.KitRPS, r.BaselineRPS = round(r.KitRPS, 0), round(r.BaselineRPS, 0)
		report.Scenarios = append(report.Scenarios, r)
		fmt.Fprintf(out, "%-12s %10.0f %10.0f %6.3f %8.3f %8.3f %10.1f %6d/%d\n", r.Name, r.KitRPS, r.BaselineRPS, r.Ratio,
			r.P50ms, r.P99ms, r.AllocsPerReq, r.KitOK, r.KitRequests)
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

// rounds alternate baseline and kit within a scenario; warmup opens the
// keep-alive connections before anything is measured.
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

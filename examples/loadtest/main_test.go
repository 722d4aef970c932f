package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the load tool's client process:
// in external mode the tool starts os.Executable() — here, this binary —
// with clientEnv set, and this process then runs the client instead of
// the tests.
func TestMain(m *testing.M) {
	if isClient() {
		if err := clientMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// A binary built with -race sleeps a second when it exits, for
	// reports from goroutines still running; the client process has none
	// left by then, and one run starts one.
	if gorace, ok := os.LookupEnv("GORACE"); !ok || !strings.Contains(gorace, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(gorace+" atexit_sleep_ms=0"))
	}
	os.Exit(m.Run())
}

// runTool runs the tool with tiny figures and returns its report, checking
// what holds whatever the machine's speed: every scenario ran, every
// request of the kit and of the baselines had the expected answer, and
// the database baseline's figures are there exactly for the backends
// that have one.
func runTool(t *testing.T, backend string, users int, external bool, scenarios string, conns ...int) Report {
	t.Helper()
	if conns == nil {
		conns = []int{4}
	}
	o := options{backend: backend, duration: 60 * time.Millisecond, conns: conns, users: users,
		scenarios: scenarios, external: external}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, o, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	text := strings.TrimSpace(out.String())
	last := text[strings.LastIndexByte(text, '\n')+1:]
	var report Report
	if err := json.Unmarshal([]byte(last), &report); err != nil {
		t.Fatalf("last line %q: %v", last, err)
	}
	var raw struct {
		Scenarios []map[string]json.RawMessage `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(last), &raw); err != nil {
		t.Fatal(err)
	}
	wantMode := "in-process"
	if external {
		wantMode = "external"
	}
	if report.Clients != wantMode || report.Backend != backend {
		t.Errorf("clients=%q backend=%q, want %q and %q", report.Clients, report.Backend, wantMode, backend)
	}
	names := strings.Split(scenarios, ",")
	if len(report.Scenarios) != len(names) {
		t.Fatalf("%d scenarios in the report, want %d:\n%s", len(report.Scenarios), len(names), text)
	}
	for i, r := range report.Scenarios {
		if r.Name != names[i] {
			t.Errorf("scenario %d is %q, want %q", i, r.Name, names[i])
		}
		if r.KitRequests == 0 || r.KitOK != r.KitRequests {
			t.Errorf("%s: kit %d ok of %d requests\n%s", r.Name, r.KitOK, r.KitRequests, text)
		}
		if r.BaselineFailed != 0 || r.DBBaselineFailed != 0 {
			t.Errorf("%s: %d bare and %d database baseline answers unexpected\n%s", r.Name, r.BaselineFailed, r.DBBaselineFailed, text)
		}
		for _, key := range []string{"name", "kit_rps", "baseline_rps", "ratio", "p50_ms", "p99_ms", "allocs_per_req",
			"baseline_p50_ms", "baseline_p99_ms", "baseline_allocs_per_req", "kit_ok", "kit_requests"} {
			if _, ok := raw.Scenarios[i][key]; !ok {
				t.Errorf("%s: no %s in the report", r.Name, key)
			}
		}
		checkCPU(t, r, backend, external)
		checkLevels(t, r, conns)
		_, hasDBRatio := raw.Scenarios[i]["db_ratio"]
		if backend == "memory" {
			if hasDBRatio || r.DBBaselineRPS != 0 {
				t.Errorf("%s: memory has no database baseline, yet db_ratio=%v db_baseline_rps=%v", r.Name, r.DBRatio, r.DBBaselineRPS)
			}
		} else if !hasDBRatio || r.DBRatio <= 0 || r.DBBaselineRPS <= 0 {
			t.Errorf("%s: db_ratio=%v db_baseline_rps=%v, want both positive\n%s", r.Name, r.DBRatio, r.DBBaselineRPS, text)
		}
	}
	return report
}

// checkLevels checks that a scenario reports each concurrency level's
// rates, and each side's figures as those of its best level.
func checkLevels(t *testing.T, r Result, conns []int) {
	t.Helper()
	if len(r.Levels) != len(conns) {
		t.Fatalf("%s: %d levels, want %v", r.Name, len(r.Levels), conns)
	}
	for i, l := range r.Levels {
		if l.Conns != conns[i] {
			t.Errorf("%s: level %d is %d conns, want %d", r.Name, i, l.Conns, conns[i])
		}
	}
	for _, side := range []struct {
		name string
		rate func(Level) float64
		got  float64
		at   int
	}{
		{"kit", func(l Level) float64 { return l.KitRPS }, r.KitRPS, r.KitConns},
		{"baseline", func(l Level) float64 { return l.BaselineRPS }, r.BaselineRPS, r.BaselineConns},
		{"db_baseline", func(l Level) float64 { return l.DBBaselineRPS }, r.DBBaselineRPS, r.DBBaselineConns},
	} {
		// The best level's rate, and the rate at the level the side's
		// figures say they come from (0 if none: memory's db_baseline).
		var best, atLevel float64
		for _, l := range r.Levels {
			best = max(best, side.rate(l))
			if l.Conns == side.at {
				atLevel = side.rate(l)
			}
		}
		if side.got != best || atLevel != best {
			t.Errorf("%s: %s %v at %d conns, want its best of %+v", r.Name, side.name, side.got, side.at, r.Levels)
		}
	}
}

// checkCPU checks a scenario's CPU costs: on Linux one for each side,
// with a client part exactly in external mode and a database part never
// for a store in the tool's process.
func checkCPU(t *testing.T, r Result, backend string, external bool) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	sides := []string{"kit", "baseline"}
	if backend != "memory" {
		sides = append(sides, "db_baseline")
	}
	if len(r.CPU) != len(sides) {
		t.Errorf("%s: CPU costs of %d sides, want %v", r.Name, len(r.CPU), sides)
	}
	for _, side := range sides {
		c := r.CPU[side]
		switch {
		case c == nil:
			t.Errorf("%s: no CPU cost of %s", r.Name, side)
		case c.Machine < 0 || c.Server < 0 || (c.Client != nil && *c.Client < 0) || (c.Database != nil && *c.Database < 0):
			t.Errorf("%s: %s cost %v", r.Name, side, c)
		case (c.Client != nil) != external:
			t.Errorf("%s: %s has a client part: %v, external: %v", r.Name, side, c.Client != nil, external)
		case c.Database != nil && (backend == "memory" || backend == "sqlite"):
			t.Errorf("%s: %s has a database part on %s", r.Name, side, backend)
		}
	}
}

// parseStat reads a process's name and time, whatever the name holds.
func TestParseStat(t *testing.T) {
	stat := "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000 10 18446744073709551615\n"
	comm, ticks, ok := parseStat([]byte(stat))
	if !ok || comm != "a) b (c)" || ticks != 10 {
		t.Fatalf("parseStat = %q, %d, %v; want \"a) b (c)\", 10, true", comm, ticks, ok)
	}
	for _, bad := range []string{"", "42 no name", "42 (x) S 1", "42 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parseStat(%q) ok", bad)
		}
	}
}

// A part one sample lacks stays absent through since and add.
func TestCPUTicks(t *testing.T) {
	before := cpuTicks{machine: 10, server: 5, client: 2, database: -1}
	after := cpuTicks{machine: 30, server: 9, client: 6, database: 4}
	d := after.since(before)
	if d != (cpuTicks{machine: 20, server: 4, client: 4, database: -1}) {
		t.Fatalf("since = %+v", d)
	}
	if s := d.add(cpuTicks{machine: 1, server: 1, client: 1, database: 1}); s != (cpuTicks{machine: 21, server: 5, client: 5, database: -1}) {
		t.Fatalf("add = %+v", s)
	}
	c := d.perRequest(100)
	if c.Machine != 2000 || c.Server != 400 || c.Client == nil || *c.Client != 400 || c.Database != nil {
		t.Fatalf("perRequest = %v", c)
	}
	if d.perRequest(0) != nil {
		t.Fatal("a cost of no requests")
	}
}

const allScenarios = "status,verify_ok,verify_fail,enroll_qr"

// TestExternal runs the tool end to end with its clients in a separate
// process, on every backend that is available.
func TestExternal(t *testing.T) {
	// Fewer users where enrolling them is slow (every write a commit to
	// disk, several per user): verify_ok may then run out of codes, which
	// the tool reports as stopped_early, not as a failure. More users than
	// conns, so that no two requests in flight are the same user's.
	for _, c := range []struct {
		backend, env string
		users        int
	}{
		{"memory", "", 200}, {"sqlite", "", 24}, {"postgres", "MFAKIT_POSTGRES_DSN", 50}, {"redis", "MFAKIT_REDIS_ADDR", 200},
	} {
		t.Run(c.backend, func(t *testing.T) {
			if c.env != "" && os.Getenv(c.env) == "" {
				t.Skipf("%s is not set: no %s run", c.env, c.backend)
			}
			runTool(t, c.backend, c.users, true, allScenarios)
		})
	}
}

// TestInProcess runs the default mode, clients in the measured process.
func TestInProcess(t *testing.T) {
	runTool(t, "memory", 200, false, "status,verify_ok")
}

// TestLevels measures at two concurrency levels: verify_ok's codes are
// split between them (a code spent at one level would be refused as
// reused at the other), and the report has both levels' figures.
func TestLevels(t *testing.T) {
	report := runTool(t, "memory", 200, true, "status,verify_ok", 2, 4)
	if !slices.Equal(report.ConnsLevels, []int{2, 4}) || report.Conns != 2 {
		t.Errorf("conns %d, levels %v; want 2 and [2 4]", report.Conns, report.ConnsLevels)
	}
}

func TestParseLevels(t *testing.T) {
	for in, want := range map[string][]int{"64": {64}, "64,256": {64, 256}, " 8 , 2": {8, 2}} {
		if got, err := parseLevels(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("parseLevels(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-4", "x", "64,", "64,64"} {
		if got, err := parseLevels(bad); err == nil {
			t.Errorf("parseLevels(%q) = %v, want an error", bad, got)
		}
	}
}

// Bad options are refused with an error that names them.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	ok := options{backend: "memory", duration: 30 * time.Millisecond, conns: []int{2}, users: 10, scenarios: "status"}
	for _, c := range []struct {
		name string
		edit func(*options)
		want string
	}{
		{"no levels", func(o *options) { o.conns = nil }, "-conns"},
		{"zero level", func(o *options) { o.conns = []int{4, 0} }, "-conns"},
		{"no users", func(o *options) { o.users = 0 }, "-users"},
		{"unknown scenario", func(o *options) { o.scenarios = "status,nope" }, `"nope"`},
		{"unknown backend", func(o *options) { o.backend = "nope" }, `"nope"`},
	} {
		o := ok
		c.edit(&o)
		var out bytes.Buffer
		if err := run(ctx, o, &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: run = %v, want an error naming %s", c.name, err, c.want)
		}
	}
}

// result takes each side's figures from its own best level.
func TestResultTakesEachSidesBest(t *testing.T) {
	at := func(rps int64) stats { return stats{requests: rps, ok: rps, elapsed: time.Second} }
	byLevel := [][]stats{
		{at(500), at(100), at(50)}, // 64 clients: the bare baseline and the database baseline do best
		{at(400), at(150), at(40)}, // 256: the kit does
	}
	r, kit := result("verify_ok", []int{64, 256}, []string{"baseline", "kit", "db_baseline"}, byLevel)
	if r.KitRPS != 150 || r.KitConns != 256 || kit.requests != 150 {
		t.Errorf("kit %v at %d conns, want 150 at 256", r.KitRPS, r.KitConns)
	}
	if r.BaselineRPS != 500 || r.BaselineConns != 64 || r.DBBaselineRPS != 50 || r.DBBaselineConns != 64 {
		t.Errorf("baseline %v at %d, database baseline %v at %d; want 500 and 50 at 64",
			r.BaselineRPS, r.BaselineConns, r.DBBaselineRPS, r.DBBaselineConns)
	}
	if r.Ratio != 0.3 || r.DBRatio != 3 {
		t.Errorf("ratio %v, db_ratio %v; want 0.3 and 3", r.Ratio, r.DBRatio)
	}
	want := []Level{{Conns: 64, KitRPS: 100, BaselineRPS: 500, DBBaselineRPS: 50}, {Conns: 256, KitRPS: 150, BaselineRPS: 400, DBBaselineRPS: 40}}
	if !slices.Equal(r.Levels, want) {
		t.Errorf("levels %+v, want %+v", r.Levels, want)
	}
}

// The client is sent a request list once, in a message of its own before
// the first job on it, so that no side's measured window includes
// encoding or decoding it; a job on a list the client was never sent is
// refused before anything is written.
func TestHoldSendsEachListBeforeItsJobs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	toClient, clientIn := io.Pipe()
	clientOut, fromClient := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- clientMain(toClient, fromClient); fromClient.Close() }()
	var sent bytes.Buffer // what the parent writes to the client
	e := &external{in: nopCloser{io.MultiWriter(clientIn, &sent)}, out: bufio.NewReader(clientOut), sent: map[string]bool{}}
	l := &load{name: "list", requests: []Request{{Method: "GET", Path: "/"}}, ok: []int{200}}
	job := Job{URL: srv.URL, Scenario: "s", Side: "kit", List: l.name, OK: l.ok, Conns: 1, Duration: 20 * time.Millisecond}

	if _, err := e.drive(context.Background(), job, l); err == nil || !strings.Contains(err.Error(), "never held") {
		t.Fatalf("drive before hold: err = %v, want one saying the list was never held", err)
	}
	if sent.Len() != 0 {
		t.Fatalf("drive before hold wrote %q", sent.String())
	}
	for range 2 {
		if err := e.hold(l); err != nil {
			t.Fatal(err)
		}
		st, err := e.drive(context.Background(), job, l)
		if err != nil || st.ok == 0 {
			t.Fatalf("drive: %v, %d ok", err, st.ok)
		}
	}
	clientIn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(sent.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("the parent wrote %d lines, want 3 (the list, two jobs): %q", len(lines), lines)
	}
	for i, line := range lines {
		var j Job
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatal(err)
		}
		if hold := i == 0; j.Hold != hold || (len(j.Requests) > 0) != hold {
			t.Errorf("line %d: hold %v with %d requests, want hold %v with the requests only then", i, j.Hold, len(j.Requests), hold)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// On PostgreSQL the kit's filled tables are vacuumed and analyzed before
// anything is measured (see vacuum); elsewhere settling changes nothing.
func TestSettleVacuumsPostgres(t *testing.T) {
	if os.Getenv("MFAKIT_POSTGRES_DSN") == "" {
		t.Skip("MFAKIT_POSTGRES_DSN is not set: no PostgreSQL run")
	}
	ctx := context.Background()
	s, db, closeAll, err := openSQLStore(ctx, "postgres", fmt.Sprintf("ltv%d_", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	tables := s.Tables()
	var vacuumed int
	count := func() {
		t.Helper()
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY($1)"+
			" AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL", tables).Scan(&vacuumed); err != nil {
			t.Fatal(err)
		}
	}
	if err := vacuum(ctx, "sqlite", db, tables); err != nil {
		t.Fatal(err)
	}
	if count(); vacuumed != 0 {
		t.Fatalf("%d tables vacuumed for sqlite, want none", vacuumed)
	}
	if err := vacuum(ctx, "postgres", db, tables); err != nil {
		t.Fatal(err)
	}
	if count(); vacuumed != len(tables) {
		t.Fatalf("%d of the %d tables %v vacuumed and analyzed", vacuumed, len(tables), tables)
	}
}

package main

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one HTTP request of a request list.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Token is the whole Authorization header ("Bearer t<n>").
	Token string `json:"token,omitempty"`
	// Body is sent as application/json when not empty.
	Body string `json:"body,omitempty"`
}

// Job is one run of the load client against one server: Conns workers
// send the requests of the named list over keep-alive connections for
// Duration. In external mode the parent writes it as one JSON line to the
// client process. A list is sent before the job that first names it, in a
// Job of its own that has Hold set and only List and Requests (the
// client keeps the lists it was sent and answers heldLine).
type Job struct {
	// URL is the server's base URL, "http://127.0.0.1:port".
	URL string `json:"url"`
	// Scenario and Side name the job in error messages.
	Scenario string `json:"scenario"`
	Side     string `json:"side"`
	// List names the request list; Requests is the list itself, sent
	// only in the job that has Hold set.
	List     string    `json:"list"`
	Requests []Request `json:"requests,omitempty"`
	// Hold asks the client to keep Requests as List, and to run nothing.
	Hold bool `json:"hold,omitempty"`
	// OK lists the statuses that count as the expected outcome.
	OK []int `json:"ok"`
	// Once marks a list whose requests may each be sent only once (a
	// TOTP code the server accepts once): the job takes them in order
	// from Start and stops early at End (0: the end of the list).
	// Otherwise the list cycles, starting at Start.
	Once  bool `json:"once,omitempty"`
	Start int  `json:"start"`
	End   int  `json:"end,omitempty"`
	// Conns is the number of concurrent keep-alive clients.
	Conns int `json:"conns"`
	// Duration bounds the job.
	Duration time.Duration `json:"duration_ns"`
}

// Outcome is what a job measured, as the client reports it.
type Outcome struct {
	// Requests counts the answers received, OK those with an expected
	// status.
	Requests int64 `json:"requests"`
	OK       int64 `json:"ok"`
	// Used is how many entries of the list the job took (sent or failed
	// to send), so that the next job on the list starts after them.
	Used int `json:"used"`
	// Elapsed runs from the first request to the last answer.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Latencies are those of every answer, sorted; P50ms and P99ms are
	// this job's percentiles (the report merges the latencies of all
	// rounds before taking its own).
	Latencies []time.Duration `json:"latencies_ns"`
	P50ms     float64         `json:"p50_ms"`
	P99ms     float64         `json:"p99_ms"`
	// StoppedEarly is set when a once-only list ran out.
	StoppedEarly bool `json:"stopped_early,omitempty"`
	// FirstFailure describes the first transport error or unexpected
	// answer.
	FirstFailure string `json:"first_failure,omitempty"`
}

// runJob sends the requests of list as j says and measures the answers.
// It is the load client of both modes: called in the tool's own process
// (in-process mode) or in the client process (external mode).
func runJob(ctx context.Context, j Job, list []Request) Outcome {
	type prepared struct {
		method, url, token, body string
	}
	reqs := make([]prepared, len(list))
	for i, r := range list {
		reqs[i] = prepared{method: r.Method, url: j.URL + r.Path, token: r.Token, body: r.Body}
	}
	end := len(reqs)
	if j.Once && j.End > 0 {
		end = min(end, j.End)
	}
	if len(reqs) == 0 || (j.Once && j.Start >= end) {
		return Outcome{StoppedEarly: j.Once}
	}
	tr := &http.Transport{MaxIdleConns: j.Conns, MaxIdleConnsPerHost: j.Conns, MaxConnsPerHost: j.Conns, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next, okCount, total atomic.Int64
	var stopEarly atomic.Bool
	var mu sync.Mutex
	var all []time.Duration
	var firstFailure string
	fail := func(s string) {
		mu.Lock()
		if firstFailure == "" {
			firstFailure = s
		}
		mu.Unlock()
	}
	start := time.Now()
	deadline := start.Add(j.Duration)
	var wg sync.WaitGroup
	for range j.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			// Each worker sends at least one request, so that a job on a
			// loaded machine still measures something.
			for first := true; (first || time.Now().Before(deadline)) && ctx.Err() == nil; first = false {
				i := j.Start + int(next.Add(1)-1)
				if j.Once && i >= end {
					stopEarly.Store(true)
					break
				}
				rq := reqs[i%len(reqs)]
				var body io.Reader
				if rq.body != "" {
					body = strings.NewReader(rq.body)
				}
				req, err := http.NewRequestWithContext(ctx, rq.method, rq.url, body)
				if err != nil {
					fail(err.Error())
					continue
				}
				if rq.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				req.Header.Set("Authorization", rq.token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				total.Add(1)
				if slices.Contains(j.OK, resp.StatusCode) {
					okCount.Add(1)
				} else {
					fail(resp.Status + " " + string(b))
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	used := int(next.Load())
	if j.Once {
		used = min(used, end-j.Start)
	}
	o := Outcome{Requests: total.Load(), OK: okCount.Load(), Used: used, Elapsed: elapsed, Latencies: all,
		StoppedEarly: stopEarly.Load(), FirstFailure: firstFailure}
	o.P50ms, o.P99ms = percentile(all, 50), percentile(all, 99)
	return o
}

// driver runs jobs and adds to their outcome the allocations the measured
// process made meanwhile.
type driver interface {
	// hold makes the client hold the request list l, so that the drive
	// that first runs it has nothing to send: encoding a list of 120 000
	// requests cost the parent about half a second of CPU on the
	// project's machine, and decoding it the client more, which would be
	// measured as the side's.
	hold(l *load) error
	// drive runs j on the request list l, which hold was given.
	drive(ctx context.Context, j Job, l *load) (stats, error)
	// close ends the driver.
	close() error
	// mode names the driver in the report: "in-process" or "external".
	mode() string
	// clientPID is the client process's pid, 0 if the clients run in
	// the tool's process.
	clientPID() int
}

// inProcess runs jobs in the tool's own process, as the tool always did:
// the allocations it reports are those of the whole process, clients
// included.
type inProcess struct{}

func (inProcess) drive(ctx context.Context, j Job, l *load) (stats, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	o := runJob(ctx, j, l.requests)
	runtime.ReadMemStats(&after)
	return statsOf(o, after.Mallocs-before.Mallocs), nil
}

func (inProcess) hold(*load) error { return nil }

func (inProcess) close() error { return nil }

func (inProcess) mode() string { return "in-process" }

func (inProcess) clientPID() int { return 0 }

// stats are the figures of one side of a scenario, merged over rounds.
type stats struct {
	requests, ok int64
	used         int // list entries taken
	elapsed      time.Duration
	latencies    []time.Duration
	mallocs      uint64
	stoppedEarly bool
	firstFailure string
	// cpu is the CPU the rounds used; cpuRounds counts the rounds that
	// measured it, cpuMissed those that could not.
	cpu                  cpuTicks
	cpuRounds, cpuMissed int
}

func statsOf(o Outcome, mallocs uint64) stats {
	return stats{requests: o.Requests, ok: o.OK, used: o.Used, elapsed: o.Elapsed, latencies: o.Latencies, mallocs: mallocs,
		stoppedEarly: o.StoppedEarly, firstFailure: o.FirstFailure}
}

// merge adds the figures of another round.
func (s stats) merge(o stats) stats {
	s.requests += o.requests
	s.ok += o.ok
	s.used += o.used
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
	slices.Sort(s.latencies)
	s.mallocs += o.mallocs
	s.stoppedEarly = s.stoppedEarly || o.stoppedEarly
	if o.cpuRounds > 0 {
		if s.cpuRounds == 0 {
			s.cpu = o.cpu
		} else {
			s.cpu = s.cpu.add(o.cpu)
		}
	}
	s.cpuRounds += o.cpuRounds
	s.cpuMissed += o.cpuMissed
	if s.firstFailure == "" {
		s.firstFailure = o.firstFailure
	}
	return s
}

func (s stats) rps() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests) / s.elapsed.Seconds()
}

func (s stats) percentile(p int) float64 { return percentile(s.latencies, p) }

// cpuPerRequest is what a request cost in CPU, or nil if a round could
// not measure it.
func (s stats) cpuPerRequest() *CPUCost {
	if s.cpuRounds == 0 || s.cpuMissed > 0 {
		return nil
	}
	return s.cpu.perRequest(s.requests)
}

func (s stats) allocsPerReq() float64 {
	if s.requests == 0 {
		return 0
	}
	return round(float64(s.mallocs)/float64(s.requests), 1)
}

// percentile returns the p-th percentile of sorted latencies in
// milliseconds.
func percentile(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, len(sorted)*p/100)
	return round(float64(sorted[i])/float64(time.Millisecond), 3)
}

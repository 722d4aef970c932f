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

// request describes the i-th request of a scenario; ok reports whether an
// answer with this status counts as the scenario's expected outcome.
type request struct {
	method, path, body, token string
	ok                        func(status int) bool
}

type stats struct {
	requests, ok int64
	elapsed      time.Duration
	latencies    []time.Duration
	mallocs      uint64
	stoppedEarly bool
	firstFailure string
}

// merge adds the figures of another round.
func (s stats) merge(o stats) stats {
	s.requests += o.requests
	s.ok += o.ok
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
	slices.Sort(s.latencies)
	s.mallocs += o.mallocs
	s.stoppedEarly = s.stoppedEarly || o.stoppedEarly
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

func (s stats) percentile(p int) float64 {
	if len(s.latencies) == 0 {
		return 0
	}
	i := min(len(s.latencies)-1, len(s.latencies)*p/100)
	return round(float64(s.latencies[i])/float64(time.Millisecond), 3)
}

func (s stats) allocsPerReq() float64 {
	if s.requests == 0 {
		return 0
	}
	return round(float64(s.mallocs)/float64(s.requests), 1)
}

// drive sends requests from conns workers over keep-alive connections for
// d (or until exhausted reports true) and collects the figures. Allocations
// are those of the whole process, clients included.
func drive(ctx context.Context, base string, next func() request, conns int, d time.Duration, exhausted func() bool) stats {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var okCount, total atomic.Int64
	var stopEarly atomic.Bool
	var mu sync.Mutex
	var all []time.Duration
	var firstFailure string
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if exhausted != nil && exhausted() {
					stopEarly.Store(true)
					break
				}
				rq := next()
				var body io.Reader
				if rq.body != "" {
					body = strings.NewReader(rq.body)
				}
				req, _ := http.NewRequestWithContext(ctx, rq.method, base+rq.path, body)
				if rq.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				req.Header.Set("Authorization", rq.token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					if firstFailure == "" {
						firstFailure = err.Error()
					}
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				total.Add(1)
				if rq.ok(resp.StatusCode) {
					okCount.Add(1)
				} else {
					mu.Lock()
					if firstFailure == "" {
						firstFailure = resp.Status + " " + string(b)
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	slices.Sort(all)
	return stats{requests: total.Load(), ok: okCount.Load(), elapsed: elapsed, latencies: all,
		mallocs: after.Mallocs - before.Mallocs, stoppedEarly: stopEarly.Load(), firstFailure: firstFailure}
}

package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
)

// period is the TOTP step of the kit (mfa.Config's default).
const period = 30 * time.Second

// clock is the kit's clock (mfa.Config.Now): it runs speed times faster
// than real time from the start of a case, so that every user has a new
// code every period/speed and a few hundred users make a steady load. The
// test keeps every time as a monotonic offset from r0; the kit read its
// clock between a request's send and its answer, so its step then lay
// between stepAt(send) and stepAt(recv).
type clock struct {
	r0    time.Time    // monotonic
	v0    atomic.Int64 // the kit's time at r0, Unix ns
	speed int64
}

func newClock(speed int) *clock {
	c := &clock{r0: time.Now(), speed: int64(speed)}
	c.v0.Store(c.r0.UnixNano())
	return c
}

func (c *clock) since() time.Duration         { return time.Since(c.r0) }
func (c *clock) at(d time.Duration) time.Time { return time.Unix(0, c.v0.Load()+int64(d)*c.speed) }
func (c *clock) now() time.Time               { return c.at(c.since()) }
func (c *clock) stepAt(d time.Duration) int64 { return c.at(d).Unix() / int64(period/time.Second) }
func (c *clock) step() int64                  { return c.stepAt(c.since()) }

// alignAt moves the clock forward (never back) by at most a step so that
// a step begins 20 ms (real time) before offset d. Called before the load
// starts, while nothing reads the clock.
func (c *clock) alignAt(d time.Duration) {
	v := c.at(d - 20*time.Millisecond).UnixNano()
	c.v0.Add((int64(period) - v%int64(period)) % int64(period))
}

// stepLen is how long a step lasts in real time.
func (c *clock) stepLen() time.Duration { return period / time.Duration(c.speed) }

// kinds of request.
const (
	kOK       uint8 = iota // a valid code of an ok user
	kSentinel              // a sentinel's code, accepted just before the fault
	kFail                  // a wrong code of a fail user
	kSweep                 // after the run: the newest accepted code again
)

// problem codes the test tells apart.
const (
	pNone uint8 = iota
	pInvalid
	pReused
	pInternal
	pOther
)

// rec is one request and its answer.
type rec struct {
	kind    uint8
	problem uint8
	status  int16 // 0: no HTTP answer (transport error)
	user    int32
	code    uint32
	step    int64 // the step of the code for valid codes; -1 for wrong ones
	send    time.Duration
	recv    time.Duration
}

func (r *rec) is5xx() bool { return r.status >= 500 || r.status == 0 }

// users: 0..nOK-1 send valid codes, then nSentinel sentinels, then nFail
// users that only get wrong codes.
type population struct {
	nOK, nSentinel, nFail int
	secrets               [][]byte
	params                mfa.TOTP
	enrollStep            []int64
}

func (p *population) kindOf(u int) uint8 {
	switch {
	case u < p.nOK:
		return kOK
	case u < p.nOK+p.nSentinel:
		return kSentinel
	}
	return kFail
}

func (p *population) name(u int) string { return fmt.Sprintf("u%06d@faults.example", u) }

func (p *population) code(u int, step int64) uint32 {
	n, _ := strconv.ParseUint(p.params.Code(p.secrets[u], step), 10, 32)
	return uint32(n)
}

// unique reports whether the code of step is the code of no other step
// within 3 of it: only such codes are sent as valid, so that the step a
// code matched is the step it was made for.
func (p *population) unique(u int, step int64) bool { return unique(p.params, p.secrets[u], step) }

func unique(params mfa.TOTP, secret []byte, step int64) bool {
	c := params.Code(secret, step)
	for d := int64(-3); d <= 3; d++ {
		if d != 0 && params.Code(secret, step+d) == c {
			return false
		}
	}
	return true
}

// wrong returns a code that is the code of no step of u within 3 of step.
func (p *population) wrong(u int, step int64, salt uint32) uint32 {
	c := (p.code(u, step) + 500000 + salt*7919) % 1000000
	for {
		ok := true
		for d := int64(-3); d <= 3; d++ {
			if p.code(u, step+d) == c {
				ok = false
			}
		}
		if ok {
			return c
		}
		c = (c + 1) % 1000000
	}
}

// tokens is the host's identity system: "Bearer t<n>" is user n.
type tokens struct{ p *population }

func (t tokens) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(token, "t"))
	if err != nil || n < 0 || n >= len(t.p.secrets) {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	name := t.p.name(n)
	return httpx.User{Username: name, Email: name}, nil
}

// countHandler is the hosts' logger: it counts the error records (a
// store that is down makes thousands) and prints none.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// kit is the kit as a host builds it, behind a real HTTP server.
type kit struct {
	store  storage.Store
	svc    *mfa.Service
	srv    *httptest.Server
	clk    *clock
	pop    *population
	errLog atomic.Int64
}

const maxFailures = 100 // mfa.Config's most

func newKit(store storage.Store, clk *clock, pop *population) (*kit, error) {
	k := &kit{store: store, clk: clk, pop: pop}
	logger := slog.New(countHandler{&k.errLog})
	svc, err := mfa.New(store, mailer.SendFunc(func(context.Context, mailer.Message) error { return nil }),
		mfa.NewRandomKeyring(), mfa.Config{Issuer: "faults", MaxFailures: maxFailures, Now: clk.now, Logger: logger})
	if err != nil {
		return nil, err
	}
	k.svc = svc
	k.srv = httptest.NewServer(httpx.New(svc, httpx.Bearer(tokens{pop}), httpx.Config{Logger: logger}).Handler())
	return k, nil
}

func (k *kit) close() { k.srv.Close() }

// enroll verifies an authenticator for every user, through the Service.
func (k *kit) enroll(ctx context.Context) error {
	p := k.pop
	n := p.nOK + p.nSentinel + p.nFail
	p.secrets = make([][]byte, n)
	p.enrollStep = make([]int64, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var mu sync.Mutex
	for range 16 {
		wg.Go(func() {
			for {
				u := int(next.Add(1) - 1)
				if u >= n {
					return
				}
				var secret []byte
				var params mfa.TOTP
				var step int64
				for {
					key, err := k.svc.BeginAuthenticator(ctx, p.name(u))
					if err != nil {
						errs <- err
						return
					}
					if secret, params, err = mfa.ParseKeyURI(key.URI); err != nil {
						errs <- err
						return
					}
					// The current step: still valid if a step begins before
					// the kit reads its clock. Its code must be no other
					// near step's, or the kit could record that step.
					if step = params.Step(k.clk.now()); unique(params, secret, step) {
						break
					}
				}
				if err := k.svc.VerifyAuthenticator(ctx, p.name(u), params.Code(secret, step)); err != nil {
					errs <- fmt.Errorf("enroll %s: %w", p.name(u), err)
					return
				}
				mu.Lock()
				p.secrets[u], p.params, p.enrollStep[u] = secret, params, step
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// client sends verify requests and records them.
type client struct {
	k    *kit
	http *http.Client
	mu   sync.Mutex
	recs []rec
}

func newClient(k *kit, timeout time.Duration) *client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return &client{k: k, http: &http.Client{Transport: tr, Timeout: timeout}}
}

// send sends code for user u and records the answer.
func (c *client) send(kind uint8, u int, code uint32, step int64) rec {
	body := fmt.Sprintf(`{"mfatype":"AUTHENTICATOR","totp":"%06d"}`, code)
	r := rec{kind: kind, user: int32(u), code: code, step: step}
	req, _ := http.NewRequest(http.MethodPut, c.k.srv.URL+"/oauth/users/mfa/verify", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t"+strconv.Itoa(u))
	req.Header.Set("Content-Type", "application/json")
	r.send = c.k.clk.since()
	resp, err := c.http.Do(req)
	if err == nil {
		var pb struct {
			Code string `json:"code"`
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			err = rerr
		} else {
			r.status = int16(resp.StatusCode)
			if resp.StatusCode != http.StatusOK {
				json.Unmarshal(b, &pb)
				switch pb.Code {
				case httpx.CodeInvalidCode:
					r.problem = pInvalid
				case httpx.CodeCodeReused:
					r.problem = pReused
				case httpx.CodeInternal:
					r.problem = pInternal
				default:
					r.problem = pOther
				}
			}
		}
	}
	r.recv = c.k.clk.since()
	if err != nil {
		r.status = 0
	}
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
	return r
}

func (c *client) records() []rec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rec(nil), c.recs...)
}

// ticket is a valid code to send: the code of user at step.
type ticket struct {
	user int
	step int64
}

// load runs the clients: ok workers send each code twice (by two
// workers) and again after every 5xx or transport error until it gets
// another answer or its step is past; fail workers send wrong codes to
// the fail users, each user at most failCap times so none locks.
type load struct {
	c       *client
	stop    atomic.Bool
	wg      sync.WaitGroup
	tickets chan ticket

	failNext atomic.Int64
	failGap  time.Duration // between two sends of one fail worker

	stale, skipped, dropped, failCapped atomic.Int64
	// last5xx and last200 are the latest recv of a 5xx (or no answer)
	// and the latest send of a 200, for the recovery watch.
	last5xx, last200 atomic.Int64
}

const failCap = maxFailures - 10

func startLoad(c *client, okWorkers, failWorkers, failRate int) *load {
	p := c.k.pop
	l := &load{c: c, tickets: make(chan ticket, 2*p.nOK),
		failGap: time.Second * time.Duration(failWorkers) / time.Duration(failRate)}
	l.last5xx.Store(-1)
	l.last200.Store(-1)
	l.wg.Go(l.schedule)
	for range okWorkers {
		l.wg.Go(l.okWorker)
	}
	for range failWorkers {
		l.wg.Go(l.failWorker)
	}
	return l
}

func (l *load) note(r rec) {
	if r.is5xx() {
		for {
			cur := l.last5xx.Load()
			if int64(r.recv) <= cur || l.last5xx.CompareAndSwap(cur, int64(r.recv)) {
				break
			}
		}
	}
	if r.status == http.StatusOK {
		for {
			cur := l.last200.Load()
			if int64(r.send) <= cur || l.last200.CompareAndSwap(cur, int64(r.send)) {
				break
			}
		}
	}
}

// schedule issues, once per step, a ticket of every ok user for the next
// step (valid from now until the end of the step after it), spread
// evenly over the step.
func (l *load) schedule() {
	defer close(l.tickets)
	clk, p := l.c.k.clk, l.c.k.pop
	last := clk.step() - 1
	for !l.stop.Load() {
		c := clk.step()
		if c <= last {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		last = c
		begin := clk.since()
		gap := clk.stepLen() / time.Duration(p.nOK+1)
		for u := 0; u < p.nOK && !l.stop.Load(); u++ {
			if wait := begin + time.Duration(u)*gap - clk.since(); wait > 0 {
				time.Sleep(wait)
			}
			s := c + 1
			if !p.unique(u, s) {
				l.skipped.Add(1)
				continue
			}
			for range 2 {
				select {
				case l.tickets <- ticket{u, s}:
				default:
					l.dropped.Add(1) // the workers are behind (retrying while the server is down)
				}
			}
		}
	}
}

func backoff(attempt int) time.Duration {
	return min(10*time.Millisecond<<min(attempt, 5), 200*time.Millisecond)
}

func (l *load) okWorker() {
	clk, p := l.c.k.clk, l.c.k.pop
	for t := range l.tickets {
		for attempt := 0; !l.stop.Load(); attempt++ {
			if clk.step() > t.step+1 {
				l.stale.Add(1)
				break
			}
			r := l.c.send(kOK, t.user, p.code(t.user, t.step), t.step)
			l.note(r)
			if !r.is5xx() {
				break
			}
			time.Sleep(backoff(attempt))
		}
	}
}

func (l *load) failWorker() {
	clk, p := l.c.k.clk, l.c.k.pop
	base := p.nOK + p.nSentinel
	next := time.Now()
	for !l.stop.Load() {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		next = next.Add(l.failGap)
		if now := time.Now(); next.Before(now) {
			next = now // behind (slow answers): no burst to catch up
		}
		i := l.failNext.Add(1) - 1
		if i >= int64(p.nFail)*failCap {
			l.failCapped.Store(1)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		u := base + int(i%int64(p.nFail))
		r := l.c.send(kFail, u, p.wrong(u, clk.step(), uint32(i)), -1)
		l.note(r)
	}
}

func (l *load) halt() {
	l.stop.Store(true)
	l.wg.Wait()
}

// acceptSentinels has every sentinel's code of the next step accepted,
// retrying on 5xx; any other answer is an error.
func acceptSentinels(c *client) error {
	clk, p := c.k.clk, c.k.pop
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= p.nSentinel {
					return
				}
				u := p.nOK + i
				s := clk.step() + 1
				if !p.unique(u, s) {
					continue // its code is a near step's too: not a sentinel this time
				}
				for attempt := 0; ; attempt++ {
					r := c.send(kSentinel, u, p.code(u, s), s)
					if r.status == http.StatusOK {
						break
					}
					if !r.is5xx() || attempt > 50 {
						errs <- fmt.Errorf("sentinel %d: answer %d (problem %d) to its code", u, r.status, r.problem)
						return
					}
					time.Sleep(backoff(attempt))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

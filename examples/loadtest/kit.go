package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
	"github.com/mfakit/mfakit/storage/redisstore"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// tokens is the load test's identity system: "Bearer t<n>" is user n.
type tokens struct{ users []httpx.User }

func (t tokens) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(token, "t"))
	if err != nil || n < 0 || n >= len(t.users) {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return t.users[n], nil
}

type kit struct {
	o       options
	svc     *mfa.Service
	url     string
	srv     *http.Server
	closers []func()
	// enrolled users are 0..users-1; users..2*users-1 only enroll QR codes.
	secrets [][]byte // per enrolled user
	params  mfa.TOTP
	codes   [][2]string // per enrolled user: codes of the next two steps, set when verify_ok starts
	uses    []atomic.Int32
	spent   atomic.Int64
	header  []string // "Bearer t<n>"
}

func openStore(ctx context.Context, backend string) (storage.Store, func(), error) {
	prefix := fmt.Sprintf("lt%d_", time.Now().UnixNano())
	switch backend {
	case "memory":
		return memstore.New(), func() {}, nil
	case "sqlite", "postgres":
		var db *sql.DB
		var err error
		dialect := sqlstore.SQLite
		cleanup := func() {}
		if backend == "sqlite" {
			dir, derr := os.MkdirTemp("", "mfakit-loadtest")
			if derr != nil {
				return nil, nil, derr
			}
			cleanup = func() { os.RemoveAll(dir) }
			db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "lt.db")+
				"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		} else {
			dsn := os.Getenv("MFAKIT_POSTGRES_DSN")
			if dsn == "" {
				return nil, nil, errors.New("-backend postgres needs MFAKIT_POSTGRES_DSN")
			}
			dialect = sqlstore.Postgres
			db, err = sql.Open("pgx", dsn)
			db.SetMaxIdleConns(64)
		}
		if err != nil {
			return nil, nil, err
		}
		s, err := sqlstore.New(db, dialect, sqlstore.Options{TablePrefix: prefix})
		if err != nil {
			return nil, nil, err
		}
		if err := s.Migrate(ctx); err != nil {
			return nil, nil, err
		}
		return s, func() {
			for _, t := range s.Tables() {
				db.Exec("DROP TABLE IF EXISTS " + t)
			}
			db.Close()
			cleanup()
		}, nil
	case "redis":
		addr := os.Getenv("MFAKIT_REDIS_ADDR")
		if addr == "" {
			return nil, nil, errors.New("-backend redis needs MFAKIT_REDIS_ADDR")
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
		s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: "mfakit-" + prefix})
		if err != nil {
			return nil, nil, err
		}
		return s, func() {
			iter := rdb.Scan(ctx, 0, "mfakit-"+prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
			rdb.Close()
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown -backend %q", backend)
}

func newKit(ctx context.Context, o options) (*kit, error) {
	store, closeStore, err := openStore(ctx, o.backend)
	if err != nil {
		return nil, err
	}
	k := &kit{o: o, closers: []func(){closeStore}}
	k.svc, err = mfa.New(store, mailer.SendFunc(func(context.Context, mailer.Message) error { return nil }),
		mfa.NewRandomKeyring(), mfa.Config{Issuer: "loadtest", MaxFailures: 100})
	if err != nil {
		k.close()
		return nil, err
	}
	az := tokens{users: make([]httpx.User, 2*o.users)}
	k.header = make([]string, 2*o.users)
	for i := range az.users {
		name := fmt.Sprintf("user%07d@example.com", i)
		az.users[i] = httpx.User{Username: name, Email: name}
		k.header[i] = "Bearer t" + strconv.Itoa(i)
	}
	if err := k.enroll(ctx); err != nil {
		k.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		k.close()
		return nil, err
	}
	k.srv = &http.Server{Handler: httpx.New(k.svc, httpx.Bearer(az), httpx.Config{}).Handler(), ReadHeaderTimeout: 10 * time.Second}
	go k.srv.Serve(ln)
	k.url = "http://" + ln.Addr().String()
	k.closers = append(k.closers, func() { k.srv.Close() })
	return k, nil
}

// enroll verifies an authenticator for users 0..users-1 with the code of
// the previous step, and keeps their secrets for verify_ok.
func (k *kit) enroll(ctx context.Context) error {
	k.secrets = make([][]byte, k.o.users)
	k.codes = make([][2]string, k.o.users)
	k.uses = make([]atomic.Int32, k.o.users)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= k.o.users {
					return
				}
				user := fmt.Sprintf("user%07d@example.com", i)
				key, err := k.svc.BeginAuthenticator(ctx, user)
				if err != nil {
					errs <- err
					return
				}
				secret, p, _ := mfa.ParseKeyURI(key.URI)
				p.Skew = 1
				if err := k.svc.VerifyAuthenticator(ctx, user, p.Code(secret, p.Step(time.Now())-1)); err != nil {
					errs <- err
					return
				}
				k.secrets[i], k.params = secret, p
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (k *kit) close() {
	for i := len(k.closers) - 1; i >= 0; i-- {
		k.closers[i]()
	}
}

type scenario struct {
	name            string
	request         func() request
	baselineRequest func() request
	exhausted       func() bool
}

// counted turns a request by index into a generator whose index runs on
// across the rounds of a scenario.
func counted(f func(i int64) request) func() request {
	var n atomic.Int64
	return func() request { return f(n.Add(1) - 1) }
}

func is(codes ...int) func(int) bool {
	return func(status int) bool {
		for _, c := range codes {
			if status == c {
				return true
			}
		}
		return false
	}
}

func (k *kit) scenario(name string) (scenario, bool) {
	users := int64(k.o.users)
	body := func(code string) string { return `{"mfatype":"AUTHENTICATOR","totp":"` + code + `"}` }
	switch name {
	case "status":
		r := func(i int64) request {
			return request{method: "GET", path: "/oauth/users/mfaDetails", token: k.header[i%users], ok: is(200)}
		}
		return scenario{name: name, request: counted(r), baselineRequest: counted(r)}, true
	case "verify_ok":
		// Each request is the next unused code of a different user, so
		// the replay guard accepts (and records) every one. The codes of
		// the current and the next step stay valid for at least 30 s.
		t := k.params.Step(time.Now())
		for u, secret := range k.secrets {
			k.codes[u] = [2]string{k.params.Code(secret, t), k.params.Code(secret, t+1)}
		}
		return scenario{name: name,
			request: counted(func(i int64) request {
				u := i % users
				n := k.uses[u].Add(1) - 1
				code := "000000"
				if n < 2 {
					code = k.codes[u][n]
					k.spent.Add(1)
				}
				return request{method: "PUT", path: "/oauth/users/mfa/verify", token: k.header[u], body: body(code), ok: is(200)}
			}),
			baselineRequest: counted(func(i int64) request {
				return request{method: "PUT", path: "/oauth/users/mfa/verify", token: k.header[i%users], body: body(k.codes[i%users][0]), ok: is(200)}
			}),
			exhausted: func() bool { return k.spent.Load() >= 2*users },
		}, true
	case "verify_fail":
		r := func(i int64) request {
			return request{method: "PUT", path: "/oauth/users/mfa/verify", token: k.header[i%users], body: body("000000"), ok: is(400, 429)}
		}
		return scenario{name: name, request: counted(r),
			baselineRequest: counted(func(i int64) request { q := r(i); q.ok = is(200); return q })}, true
	case "enroll_qr":
		r := func(i int64) request {
			return request{method: "PUT", path: "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", token: k.header[users+i%users], ok: is(200)}
		}
		return scenario{name: name, request: counted(r), baselineRequest: counted(r)}, true
	}
	return scenario{}, false
}

// startBaseline serves the same routes with a bare handler that checks the
// Authorization header, decodes the same JSON body and answers 200.
func startBaseline() (*httptestServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet {
			var body struct {
				MFAType string `json:"mfatype"`
				TOTP    string `json:"totp"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"availables":["AUTHENTICATOR","EMAIL"],"details":{}}`)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &httptestServer{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

type httptestServer struct {
	URL string
	srv *http.Server
}

func (s *httptestServer) Close() { s.srv.Close() }

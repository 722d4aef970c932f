package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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

// kit is the kit under test: an mfa.Service on the chosen store, served by
// httpx on a loopback listener.
type kit struct {
	o       options
	svc     *mfa.Service
	url     string
	closers []func()
	// enrolled users are 0..users-1; users..2*users-1 only enroll QR codes.
	secrets [][]byte // per enrolled user
	// taken is, per enrolled user, the latest step the kit may have
	// recorded for the enrollment's code (see lastStepOf).
	taken  []int64
	params mfa.TOTP
	header []string // "Bearer t<n>"
	lists  int      // request lists made, to name each one apart
}

// pgPoolSize is the size of each PostgreSQL pool the tool opens, the
// kit's and the database baseline's: both open and idle, so that neither
// side reconnects under load. Two pools of 32 keep the process within 64
// connections, a share PostgreSQL's default max_connections (100) leaves
// to other users of the server.
const pgPoolSize = 32

// openPostgres opens the PostgreSQL database of $MFAKIT_POSTGRES_DSN
// through pgx's database/sql driver with a pool of pgPoolSize.
func openPostgres() (*sql.DB, error) {
	dsn := os.Getenv("MFAKIT_POSTGRES_DSN")
	if dsn == "" {
		return nil, errors.New("-backend postgres needs MFAKIT_POSTGRES_DSN")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	return db, nil
}

// openSQL opens a database of backend "sqlite" or "postgres" with the
// pool the tool uses for it: sqlstore.OpenSQLite's on a new file in a
// temporary directory (removed by cleanup), or openPostgres's.
func openSQL(backend string) (db *sql.DB, dialect sqlstore.Dialect, cleanup func(), err error) {
	if backend == "postgres" {
		db, err = openPostgres()
		return db, sqlstore.Postgres, func() {}, err
	}
	dir, err := os.MkdirTemp("", "mfakit-loadtest")
	if err != nil {
		return nil, 0, nil, err
	}
	db, err = sqlstore.OpenSQLite(filepath.Join(dir, "lt.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, 0, nil, err
	}
	return db, sqlstore.SQLite, func() { os.RemoveAll(dir) }, nil
}

// openSQLStore opens a database with openSQL and migrates a sqlstore.Store
// in it whose tables start with prefix. closeAll drops the tables and closes
// the database.
func openSQLStore(ctx context.Context, backend, prefix string) (s *sqlstore.Store, db *sql.DB, closeAll func(), err error) {
	db, dialect, cleanup, err := openSQL(backend)
	if err != nil {
		return nil, nil, nil, err
	}
	closeAll = func() {
		if s != nil {
			s.Close()
			for _, t := range s.Tables() {
				if _, err := db.Exec("DROP TABLE IF EXISTS " + t); err != nil {
					fmt.Fprintf(os.Stderr, "loadtest: cleanup: drop table %s: %v\n", t, err)
				}
			}
		}
		db.Close()
		cleanup()
	}
	if s, err = sqlstore.New(db, dialect, sqlstore.Options{TablePrefix: prefix}); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return s, db, closeAll, nil
}

// openRedis connects to $MFAKIT_REDIS_ADDR with a pool of 64.
func openRedis() (*redis.Client, error) {
	addr := os.Getenv("MFAKIT_REDIS_ADDR")
	if addr == "" {
		return nil, errors.New("-backend redis needs MFAKIT_REDIS_ADDR")
	}
	return redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64}), nil
}

// deleteKeys deletes the keys that match pattern.
func deleteKeys(ctx context.Context, rdb *redis.Client, pattern string) {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// vacuum runs VACUUM (ANALYZE) on tables when backend is PostgreSQL, as
// pgbench does before it measures: a side's tables are then measured as
// they stand in steady use, not with the dead row versions of their
// filling (every kit enrollment is an INSERT and an UPDATE, which leaves
// a dead version behind in the table and in each of its indexes) and an
// autovacuum of them due in some side's measured window.
func vacuum(ctx context.Context, backend string, db *sql.DB, tables []string) error {
	if backend != "postgres" {
		return nil
	}
	for _, t := range tables {
		if _, err := db.ExecContext(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

// openStore opens the kit's store; its tables or keys start with a prefix
// of their own, and closeStore removes them. settle readies the store to
// be measured once it is filled (see vacuum).
func openStore(ctx context.Context, backend string) (_ storage.Store, closeStore func(), settle func(context.Context) error, _ error) {
	prefix := fmt.Sprintf("lt%d_", time.Now().UnixNano())
	nothing := func(context.Context) error { return nil }
	switch backend {
	case "memory":
		return memstore.New(), func() {}, nothing, nil
	case "sqlite", "postgres":
		s, db, closeAll, err := openSQLStore(ctx, backend, prefix)
		if err != nil {
			return nil, nil, nil, err
		}
		return s, closeAll, func(ctx context.Context) error { return vacuum(ctx, backend, db, s.Tables()) }, nil
	case "redis":
		rdb, err := openRedis()
		if err != nil {
			return nil, nil, nil, err
		}
		s, err := redisstore.New(rdb, redisstore.Options{KeyPrefix: "mfakit-" + prefix})
		if err != nil {
			rdb.Close()
			return nil, nil, nil, err
		}
		return s, func() {
			deleteKeys(ctx, rdb, "mfakit-"+prefix+"*")
			rdb.Close()
		}, nothing, nil
	}
	return nil, nil, nil, fmt.Errorf("unknown -backend %q", backend)
}

func newKit(ctx context.Context, o options) (*kit, error) {
	store, closeStore, settle, err := openStore(ctx, o.backend)
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
		name := userName(i)
		az.users[i] = httpx.User{Username: name, Email: name}
		k.header[i] = "Bearer t" + strconv.Itoa(i)
	}
	if err := k.enroll(ctx); err != nil {
		k.close()
		return nil, err
	}
	if err := settle(ctx); err != nil {
		k.close()
		return nil, err
	}
	srv, err := serve(httpx.New(k.svc, httpx.Bearer(az), httpx.Config{}).Handler())
	if err != nil {
		k.close()
		return nil, err
	}
	k.url = srv.url
	k.closers = append(k.closers, srv.close)
	return k, nil
}

// enroll verifies an authenticator for users 0..users-1 with the code of
// the previous step, and keeps their secrets for verify_ok.
func (k *kit) enroll(ctx context.Context) error {
	k.secrets, k.taken = make([][]byte, k.o.users), make([]int64, k.o.users)
	var next atomic.Int64
	var params sync.Once
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
				user := userName(i)
				key, err := k.svc.BeginAuthenticator(ctx, user)
				if err != nil {
					errs <- err
					return
				}
				secret, p, _ := mfa.ParseKeyURI(key.URI)
				p.Skew = 1
				// The previous step's code (older than any verify_ok
				// sends) is valid only until the next step begins, which
				// may come before the kit checks it: then try again.
				var prev int64
				for try := 1; ; try++ {
					prev = p.Step(time.Now()) - 1
					err = k.svc.VerifyAuthenticator(ctx, user, p.Code(secret, prev))
					if err == nil || !errors.Is(err, mfa.ErrInvalidCode) || try == 3 {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("enrolling %s: %w", user, err)
					return
				}
				// Checked in the next step, or (if that ended first) in
				// the one after, the code is in a window that reaches
				// prev+3.
				k.secrets[i], k.taken[i] = secret, lastStepOf(p, secret, prev, prev+3)
				params.Do(func() { k.params = p })
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

// load is a request list and how one side reads it. Sides that send the
// same requests share the list (and its name), each with a load of its
// own.
type load struct {
	name     string
	requests []Request
	ok       []int // the statuses that count as the expected outcome
	once     bool  // each request may be sent only once (see Job.Once)
	// segment, if not 0, splits a once-only list into parts of this
	// size that no job crosses: a job ends (with all its answers in)
	// where a part ends, and the next job takes the next part.
	segment int
	pos     int // where the side's next job starts in the list
}

// end is where the job that starts at pos must stop: the end of the
// list or of pos's segment.
func (l *load) end() int {
	if !l.once || l.segment <= 0 {
		return len(l.requests)
	}
	return min(len(l.requests), (l.pos/l.segment+1)*l.segment)
}

// exhausted reports whether a once-only list has been used up.
func (l *load) exhausted() bool { return l.once && l.pos >= len(l.requests) }

// advance moves past the n requests a job used.
func (l *load) advance(n int) {
	l.pos += n
	if !l.once && len(l.requests) > 0 {
		l.pos %= len(l.requests)
	}
}

// scenario is one load shape: what the kit, the bare baseline and the
// database baseline are sent.
type scenario struct {
	name          string
	kit, base, db *load
}

// wrongCode is the code of the failing checks. The database baseline
// takes a check with this code as a failed one (see dbBaseline).
const wrongCode = "000000"

// scenario returns the named scenario's request lists. The baselines are
// sent the same requests as the kit (but for verify_fail's codes, which
// they do not check) and answer 200.
//
// With parts > 1 the users are split into parts equal ranges and
// verify_ok's once-only codes are those of range part alone, so that each
// concurrency level (see options.conns) spends codes no other level has
// spent; the other lists take every user.
func (k *kit) scenario(name string, part, parts int) (scenario, bool) {
	users := k.o.users
	lo, hi := part*users/parts, (part+1)*users/parts
	body := func(code string) string { return `{"mfatype":"AUTHENTICATOR","totp":"` + code + `"}` }
	list := func(id string, f func(u int) Request) *load {
		l := &load{name: id, requests: make([]Request, users), ok: []int{200}}
		for u := range users {
			l.requests[u] = f(u)
		}
		return l
	}
	k.lists++
	id := fmt.Sprintf("%s#%d", name, k.lists) // new lists, new names
	sc := scenario{name: name}
	switch name {
	case "status":
		sc.kit = list(id, func(u int) Request {
			return Request{Method: "GET", Path: "/oauth/users/mfaDetails", Token: k.header[u]}
		})
		sc.base = sc.kit
	case "verify_ok":
		// Each request is the next unused code of a different user, so
		// the replay guard accepts (and records) every one: the codes of
		// the current step for every user, then those of the next. They
		// stay valid for at least 30 s. A user's second code is sent only
		// once the first has been answered (one segment per step), for
		// the kit rejects a code older than the last it accepted. The
		// baselines cycle over the first half. The kit takes a code for
		// the latest step in its window that has those digits (one in a
		// million per other step), and then rightly refuses a code of an
		// earlier step as reused. So a user is left out if the kit may
		// have taken their enrollment's code for step t or later (taken),
		// and is sent only the first code if that may be taken for step
		// t+1 (checked before the next step begins) or t+2 (after).
		t := k.params.Step(time.Now())
		sc.kit = &load{name: id + "/once", requests: make([]Request, 0, 2*users), ok: []int{200}, once: true}
		verify := func(u int, step int64) Request {
			return Request{Method: "PUT", Path: "/oauth/users/mfa/verify", Token: k.header[u], Body: body(k.params.Code(k.secrets[u], step))}
		}
		for u := lo; u < hi; u++ {
			if k.taken[u] < t {
				sc.kit.requests = append(sc.kit.requests, verify(u, t))
			}
		}
		sc.kit.segment = len(sc.kit.requests)
		for u := lo; u < hi; u++ {
			if k.taken[u] < t && lastStepOf(k.params, k.secrets[u], t, t+2) == t {
				sc.kit.requests = append(sc.kit.requests, verify(u, t+1))
			}
		}
		sc.base = list(id, func(u int) Request {
			code := k.params.Code(k.secrets[u], t)
			if code == wrongCode { // would be a failed check to the database baseline
				code = k.params.Code(k.secrets[u], t+1)
			}
			return Request{Method: "PUT", Path: "/oauth/users/mfa/verify", Token: k.header[u], Body: body(code)}
		})
	case "verify_fail":
		t := k.params.Step(time.Now())
		sc.kit = list(id, func(u int) Request {
			return Request{Method: "PUT", Path: "/oauth/users/mfa/verify", Token: k.header[u], Body: body(k.rejectedCode(u, t))}
		})
		sc.kit.name, sc.kit.ok = id+"/kit", []int{400, 429}
		sc.base = list(id, func(u int) Request {
			return Request{Method: "PUT", Path: "/oauth/users/mfa/verify", Token: k.header[u], Body: body(wrongCode)}
		})
	case "enroll_qr":
		sc.kit = list(id, func(u int) Request {
			return Request{Method: "PUT", Path: "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", Token: k.header[users+u]}
		})
		sc.base = sc.kit
	default:
		return scenario{}, false
	}
	if sc.base == sc.kit {
		b := *sc.kit
		sc.base = &b
	}
	db := *sc.base
	sc.db = &db
	return sc, true
}

// lastStepOf returns the latest step in [from, to] whose code has the
// digits of step from's.
func lastStepOf(p mfa.TOTP, secret []byte, from, to int64) int64 {
	last, code := from, p.Code(secret, from)
	for s := from + 1; s <= to; s++ {
		if p.Code(secret, s) == code {
			last = s
		}
	}
	return last
}

// rejectedCode returns a code user u's authenticator does not show in the
// steps around t (so the kit rejects it for the whole scenario):
// wrongCode unless that is, by chance, one of them.
func (k *kit) rejectedCode(u int, t int64) string {
	for c := 0; ; c++ {
		code := fmt.Sprintf("%06d", c)
		valid := false
		for s := t - 2; s <= t+3; s++ {
			valid = valid || k.params.Code(k.secrets[u], s) == code
		}
		if !valid {
			return code
		}
	}
}

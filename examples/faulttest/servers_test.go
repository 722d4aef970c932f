package faulttest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
)

// dbName is the database the kit uses on the private SQL servers.
const dbName = "faults"

// server is one private database server that the test may restart and
// whose connections it may kill. It is never one of the machine's shared
// servers: each lives in a directory of its own, on a port of its own.
type server interface {
	// start starts the server and returns once it answers a query.
	start() error
	// stop stops it the given way (a stopMode of its own) and returns once
	// the process is gone.
	stop(mode string) error
	// killConns ends every client connection but the test's own and
	// returns how many it ended.
	killConns() (int, error)
	// close stops it for good (best effort).
	close()
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now,
// below the range the system hands out to outgoing connections and to
// listeners on port 0: a server that restarts finds its port still free.
func freePort() (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low > 11024 {
		for range 200 {
			port := low - 10000 + rand.IntN(9000)
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				ln.Close()
				return port, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitUp runs ping every 50 ms until it succeeds or limit passes.
func waitUp(limit time.Duration, exited <-chan struct{}, ping func(ctx context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the server exited while starting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not up after %s: %v", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ---- PostgreSQL ----

// pgServer is a PostgreSQL cluster made by initdb and run by pg_ctl, as
// the postgres OS user when the test runs as root (initdb refuses root).
type pgServer struct {
	bin, dir, data, log string
	port                int
	osUser              string
}

func pgBin() (string, error) {
	if d := os.Getenv("MFAKIT_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { // newest version first
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL binaries (initdb, pg_ctl): set MFAKIT_PG_BIN")
}

func newPostgres(dir string) (*pgServer, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &pgServer{bin: bin, dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "server.log"), port: port}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if isRoot() {
		s.osUser = "postgres"
		u, err := user.Lookup(s.osUser)
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := s.cmd("initdb", "-D", s.data, "-A", "trust", "-U", "postgres", "-N", "-E", "UTF8").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return s, nil
}

func (s *pgServer) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.osUser != "" {
		return exec.Command("runuser", append([]string{"-u", s.osUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// admin runs fn on a fresh connection to the postgres database.
func (s *pgServer) admin(ctx context.Context, fn func(*sql.Conn) error) error {
	return onFreshConn(ctx, "pgx", s.dsn("postgres"), fn)
}

// onFreshConn runs fn on a connection of its own to dsn, closed after (no
// pool: the server may have restarted since the last call).
func onFreshConn(ctx context.Context, driver, dsn string, fn func(*sql.Conn) error) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

func (s *pgServer) start() error {
	// Durability as shipped: fsync and synchronous_commit on.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=on -c synchronous_commit=on", s.port, s.dir)
	if out, err := s.cmd("pg_ctl", "-D", s.data, "-l", s.log, "-o", opts, "-W", "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	err := waitUp(60*time.Second, nil, func(ctx context.Context) error {
		return s.admin(ctx, func(c *sql.Conn) error { return c.PingContext(ctx) })
	})
	if err != nil {
		return fmt.Errorf("postgres: %v\n%s", err, tail(s.log, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.admin(ctx, func(c *sql.Conn) error {
		var n int
		if err := c.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", dbName).Scan(&n); err != nil || n > 0 {
			return err
		}
		_, err := c.ExecContext(ctx, "CREATE DATABASE "+dbName)
		return err
	})
}

// stop modes of PostgreSQL: pg_ctl's fast (clean: backends end, a
// checkpoint) and immediate (a crash: no checkpoint, WAL replay at start).
func (s *pgServer) stop(mode string) error {
	if out, err := s.cmd("pg_ctl", "-D", s.data, "-m", mode, "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	return nil
}

func (s *pgServer) killConns() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	err := s.admin(ctx, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"+
			" WHERE datname = $1 AND pid <> pg_backend_pid()", dbName).Scan(&n)
	})
	return n, err
}

func (s *pgServer) close() {
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		s.cmd("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "-t", "30", "stop").Run()
	}
}

// ---- MariaDB / MySQL ----

// mysqlServer is a MariaDB (or MySQL) server made by mariadb-install-db,
// run as a child process.
type mysqlServer struct {
	daemon, dir, data, errLog string
	port                      int
	proc                      *exec.Cmd
	exited                    chan struct{}
}

func newMySQL(dir string) (*mysqlServer, error) {
	daemon, err := exec.LookPath("mariadbd")
	if err != nil {
		if daemon, err = exec.LookPath("mysqld"); err != nil {
			return nil, errors.New("no mariadbd or mysqld in PATH")
		}
	}
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		if install, err = exec.LookPath("mysql_install_db"); err != nil {
			return nil, errors.New("no mariadb-install-db or mysql_install_db in PATH")
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &mysqlServer{daemon: daemon, dir: dir, data: filepath.Join(dir, "data"), errLog: filepath.Join(dir, "error.log"), port: port}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"--no-defaults", "--datadir=" + s.data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if isRoot() {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", install, err, out)
	}
	return s, nil
}

func (s *mysqlServer) dsn(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.port, db)
}

func (s *mysqlServer) admin(ctx context.Context, fn func(*sql.Conn) error) error {
	cfg, err := mysql.ParseDSN(s.dsn(""))
	if err != nil {
		return err
	}
	cfg.Timeout = 2 * time.Second
	return onFreshConn(ctx, "mysql", cfg.FormatDSN(), fn)
}

func (s *mysqlServer) start() error {
	// Durability as shipped: InnoDB writes and flushes its log at every
	// commit (innodb_flush_log_at_trx_commit=1).
	args := []string{"--no-defaults", "--datadir=" + s.data, "--port=" + strconv.Itoa(s.port),
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(s.dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(s.dir, "mysqld.pid"), "--log-error=" + s.errLog,
		"--skip-name-resolve", "--max-connections=300", "--innodb-buffer-pool-size=64M",
		"--innodb-flush-log-at-trx-commit=1"}
	if isRoot() {
		args = append(args, "--user=root")
	}
	s.proc = exec.Command(s.daemon, args...)
	if err := s.proc.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(p *exec.Cmd) { p.Wait(); close(exited) }(s.proc)
	err := waitUp(60*time.Second, exited, func(ctx context.Context) error {
		return s.admin(ctx, func(c *sql.Conn) error { return c.PingContext(ctx) })
	})
	if err != nil {
		return fmt.Errorf("mariadbd: %v\n%s", err, tail(s.errLog, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.admin(ctx, func(c *sql.Conn) error {
		_, err := c.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+dbName)
		return err
	})
}

// stop modes of MariaDB: term (SIGTERM, a clean shutdown) and kill
// (SIGKILL, a crash: InnoDB recovers from its log at start).
func (s *mysqlServer) stop(mode string) error {
	sig := syscall.SIGTERM
	if mode == "kill" {
		sig = syscall.SIGKILL
	}
	return signalAndWait(s.proc, s.exited, sig)
}

func signalAndWait(p *exec.Cmd, exited <-chan struct{}, sig syscall.Signal) error {
	if p == nil || p.Process == nil {
		return errors.New("not running")
	}
	p.Process.Signal(sig)
	select {
	case <-exited:
		return nil
	case <-time.After(60 * time.Second):
		p.Process.Kill()
		<-exited
		return fmt.Errorf("did not stop within 60s of %v: killed", sig)
	}
}

func (s *mysqlServer) killConns() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	err := s.admin(ctx, func(c *sql.Conn) error {
		rows, err := c.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", dbName)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			// A connection may have gone meanwhile: "Unknown thread id".
			if _, err := c.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10)); err == nil {
				n++
			}
		}
		return rows.Err()
	})
	return n, err
}

func (s *mysqlServer) close() {
	if s.proc != nil && s.proc.Process != nil {
		select {
		case <-s.exited:
		default:
			signalAndWait(s.proc, s.exited, syscall.SIGKILL)
		}
	}
}

// ---- Redis ----

// redisServer is a redis-server child process that keeps an append-only
// file fsynced at every write: what it acknowledged survives a restart
// and a crash of the process.
type redisServer struct {
	dir    string
	port   int
	proc   *exec.Cmd
	exited chan struct{}
}

func newRedis(dir string) (*redisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("no redis-server in PATH")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &redisServer{dir: dir, port: port}, nil
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// admin runs fn on a one-connection client that never retries.
func (s *redisServer) admin(fn func(*redis.Client) error) error {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), PoolSize: 1, MaxRetries: -1, DialTimeout: 2 * time.Second})
	defer c.Close()
	return fn(c)
}

func (s *redisServer) start() error {
	s.proc = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--dir", s.dir, "--pidfile", filepath.Join(s.dir, "redis.pid"),
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no")
	if err := s.proc.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(p *exec.Cmd) { p.Wait(); close(exited) }(s.proc)
	err := waitUp(60*time.Second, exited, func(ctx context.Context) error {
		return s.admin(func(c *redis.Client) error { return c.Ping(ctx).Err() })
	})
	if err != nil {
		return fmt.Errorf("redis-server: %v\n%s", err, tail(filepath.Join(s.dir, "redis.log"), 10))
	}
	return nil
}

// stop modes of Redis: shutdown (the SHUTDOWN command: the AOF is
// flushed, the process exits) and kill (SIGKILL).
func (s *redisServer) stop(mode string) error {
	if mode == "kill" {
		return signalAndWait(s.proc, s.exited, syscall.SIGKILL)
	}
	s.admin(func(c *redis.Client) error {
		return c.Do(context.Background(), "SHUTDOWN").Err() // answers with a closed connection
	})
	select {
	case <-s.exited:
		return nil
	case <-time.After(30 * time.Second):
		return signalAndWait(s.proc, s.exited, syscall.SIGTERM)
	}
}

func (s *redisServer) killConns() (int, error) {
	var n int64
	err := s.admin(func(c *redis.Client) error {
		var err error
		n, err = c.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Int64()
		return err
	})
	return int(n), err
}

func (s *redisServer) close() {
	if s.proc != nil && s.proc.Process != nil {
		select {
		case <-s.exited:
		default:
			signalAndWait(s.proc, s.exited, syscall.SIGKILL)
		}
	}
}

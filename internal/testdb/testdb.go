// Package testdb opens the real databases that backend tests run against.
// Each reads its address from the environment and skips the test, saying
// why, when the variable is unset. Names it hands out are unique per call,
// so concurrent and repeated runs never collide.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// Environment variables naming the test servers.
const (
	PostgresEnv = "MFAKIT_POSTGRES_DSN" // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	MySQLEnv    = "MFAKIT_MYSQL_DSN"    // e.g. root@tcp(127.0.0.1:3306)/test
	RedisEnv    = "MFAKIT_REDIS_ADDR"   // e.g. 127.0.0.1:6379
	// RedisClusterEnv lists the seed nodes of a Redis Cluster, comma-separated:
	// e.g. 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103 (.ci/redis-cluster
	// starts that one).
	RedisClusterEnv = "MFAKIT_REDIS_CLUSTER_ADDRS"
)

// Unique returns a fresh name: prefix followed by 12 random hex digits and '_'.
func Unique(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b) + "_"
}

func dsn(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Skipf("%s is not set: skipping the tests that need this server (.ci/run sets it)", env)
	}
	return v
}

func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("%s: %v", driver, err)
	}
	// Bounded, as a deployment's pool is: test packages and parallel
	// cases share one server (PostgreSQL allows 100 connections by
	// default), and a burst of goroutines waits for a connection instead
	// of failing with "too many clients". Idle ones are kept for the next
	// case.
	db.SetMaxOpenConns(12)
	db.SetMaxIdleConns(12)
	t.Cleanup(func() { db.Close() })
	return db
}

// Postgres opens a new pool on the server of MFAKIT_POSTGRES_DSN.
func Postgres(t testing.TB) *sql.DB { return open(t, "pgx", dsn(t, PostgresEnv)) }

// PostgresKillable opens a pool whose connections carry a unique
// application_name, and returns it with a function that terminates every
// server backend of that pool, as a crashing network or a failover would.
func PostgresKillable(t testing.TB) (*sql.DB, func() error) {
	d := dsn(t, PostgresEnv)
	app := Unique("mfakit_kill_")
	sep := "?"
	if strings.Contains(d, "?") {
		sep = "&"
	}
	db := open(t, "pgx", d+sep+"application_name="+app)
	admin := Postgres(t)
	return db, func() error {
		_, err := admin.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app)
		return err
	}
}

// PostgresSchemaDSN creates a fresh schema on the server of
// MFAKIT_POSTGRES_DSN and returns that DSN with search_path set to it, for
// a program that opens the database itself (the demo): the tables it
// creates under their usual names land in this schema, apart from every
// other run. The schema and everything in it is dropped when the test ends.
func PostgresSchemaDSN(t testing.TB) string {
	t.Helper()
	d := dsn(t, PostgresEnv)
	schema := strings.TrimSuffix(Unique("mfakit_test_"), "_")
	admin := Postgres(t)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	if u, err := url.Parse(d); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return d + " search_path=" + schema // keyword/value form
}

// MySQL opens a new pool on the server of MFAKIT_MYSQL_DSN.
func MySQL(t testing.TB) *sql.DB { return open(t, "mysql", dsn(t, MySQLEnv)) }

// MySQLKillable opens a pool on a fresh database of its own (dropped at
// the end), and returns it with a function that kills every connection
// using that database.
func MySQLKillable(t testing.TB) (*sql.DB, func() error) {
	cfg, err := mysql.ParseDSN(dsn(t, MySQLEnv))
	if err != nil {
		t.Fatal(err)
	}
	admin := MySQL(t)
	name := strings.TrimSuffix(Unique("mfakit_kill_"), "_")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name) })
	cfg.DBName = name
	db := open(t, "mysql", cfg.FormatDSN())
	return db, func() error {
		rows, err := admin.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()", name)
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if rows.Scan(&id) == nil {
				ids = append(ids, id)
			}
		}
		rows.Close()
		for _, id := range ids {
			admin.Exec(fmt.Sprintf("KILL %d", id))
		}
		return nil
	}
}

// SQLiteDSN is the modernc.org/sqlite DSN for a file, with the busy timeout
// and immediate write transactions sqlstore needs under concurrency.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// SQLite opens a new database file in a temporary directory.
func SQLite(t testing.TB) *sql.DB {
	return open(t, "sqlite", SQLiteDSN(filepath.Join(t.TempDir(), "mfakit.db")))
}

// Redis opens a new client on the server of MFAKIT_REDIS_ADDR.
func Redis(t testing.TB) redis.UniversalClient { return redisClient(t, "") }

// RedisKillable opens a client whose connections carry a unique name, and
// returns it with a function that kills all of them on the server.
func RedisKillable(t testing.TB) (redis.UniversalClient, func() error) {
	name := Unique("mfakit-kill-")
	c := redisClient(t, name)
	admin := Redis(t)
	return c, func() error { return killNamed(context.Background(), admin, name) }
}

// killNamed kills the connections named name on the server of admin.
func killNamed(ctx context.Context, admin redis.UniversalClient, name string) error {
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(list, "\n") {
		var id string
		mine := false
		for _, field := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(field, "id="); ok {
				id = v
			}
			if field == "name="+name {
				mine = true
			}
		}
		if mine && id != "" {
			admin.Do(ctx, "CLIENT", "KILL", "ID", id)
		}
	}
	return nil
}

func redisClient(t testing.TB, name string) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: dsn(t, RedisEnv), ClientName: name})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RedisCluster opens a new cluster client on the Redis Cluster of
// MFAKIT_REDIS_CLUSTER_ADDRS, once the cluster reports cluster_state:ok.
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	return redisCluster(t, "")
}

// RedisClusterKillable opens a cluster client whose connections carry a
// unique name, and returns it with a function that kills all of them on
// every node of the cluster.
func RedisClusterKillable(t testing.TB) (*redis.ClusterClient, func() error) {
	name := Unique("mfakit-kill-")
	c := redisCluster(t, name)
	admin := RedisCluster(t)
	return c, func() error {
		return admin.ForEachShard(context.Background(), func(ctx context.Context, node *redis.Client) error {
			return killNamed(ctx, node, name)
		})
	}
}

func redisCluster(t testing.TB, name string) *redis.ClusterClient {
	t.Helper()
	v := os.Getenv(RedisClusterEnv)
	if v == "" {
		t.Skipf("%s is not set: skipping the Redis Cluster tests (.ci/run starts a cluster with .ci/redis-cluster and sets it)", RedisClusterEnv)
	}
	var addrs []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClientName: name})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := c.ClusterInfo(ctx).Result()
	if err == nil && !strings.Contains(info, "cluster_state:ok") {
		err = fmt.Errorf("cluster_state is not ok (run .ci/redis-cluster):\n%s", info)
	}
	if err == nil {
		err = c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() })
	}
	if err != nil {
		c.Close()
		t.Fatalf("redis cluster %s: %v", v, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RedisKeys lists the keys matching pattern: on every master when rdb is
// a cluster client (a SCAN sees the keys of one node only).
func RedisKeys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
		t.Errorf("listing redis keys %s: %v", pattern, err)
	}
	return keys
}

// DeleteRedisKeys deletes every key that starts with prefix (on every
// master of a cluster) when the test ends. prefix must not contain a glob
// character.
func DeleteRedisKeys(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, k := range RedisKeys(t, rdb, prefix+"*") {
			rdb.Del(ctx, k) // one key per command: keys of a cluster live in many slots
		}
	})
}

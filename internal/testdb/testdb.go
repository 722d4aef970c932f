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
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// Environment variables naming the test servers.
const (
	PostgresEnv = "MFAKIT_POSTGRES_DSN" // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	MySQLEnv    = "MFAKIT_MYSQL_DSN"    // e.g. root@tcp(127.0.0.1:3306)/test
	RedisEnv    = "MFAKIT_REDIS_ADDR"   // e.g. 127.0.0.1:6379
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
	// Keep the connections a concurrency case opened for the next one.
	db.SetMaxIdleConns(64)
	t.Cleanup(func() { db.Close() })
	return db
}

// Postgres opens a new pool on the server of MFAKIT_POSTGRES_DSN.
func Postgres(t testing.TB) *sql.DB { return open(t, "pgx", dsn(t, PostgresEnv)) }

// MySQL opens a new pool on the server of MFAKIT_MYSQL_DSN.
func MySQL(t testing.TB) *sql.DB { return open(t, "mysql", dsn(t, MySQLEnv)) }

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
func Redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: dsn(t, RedisEnv)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

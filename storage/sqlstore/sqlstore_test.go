package sqlstore_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/sqlstore"
	"github.com/mfakit/mfakit/storage/storagetest"
)

// newStore migrates a store with a fresh table prefix on db and drops its
// tables when the test ends.
func newStore(t testing.TB, db *sql.DB, d sqlstore.Dialect) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.New(db, d, sqlstore.Options{TablePrefix: testdb.Unique("t")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, table := range s.Tables() {
			db.Exec("DROP TABLE IF EXISTS " + table)
		}
	})
	return s
}

var backends = []struct {
	name    string
	dialect sqlstore.Dialect
	open    func(testing.TB) *sql.DB
}{
	{"SQLite", sqlstore.SQLite, testdb.SQLite},
	{"Postgres", sqlstore.Postgres, testdb.Postgres},
	{"MySQL", sqlstore.MySQL, testdb.MySQL},
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			storagetest.Run(t, func(t testing.TB) storage.Store { return newStore(t, db, b.dialect) })
		})
	}
}

func TestClosedConnection(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			// The store under test runs on a pool of its own, closed; the
			// tables are made and dropped through another.
			tables := newStore(t, b.open(t), b.dialect)
			db := b.open(t)
			s, err := sqlstore.New(db, b.dialect, sqlstore.Options{TablePrefix: prefixOf(tables)})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			storagetest.Unavailable(t, s)
		})
	}
}

// TestKilledConnections kills the server side of the store's connections
// again and again during concurrent writes: the store reports errors, never
// a false success, and stays consistent (durability, issue #3).
func TestKilledConnections(t *testing.T) {
	for _, b := range []struct {
		name     string
		dialect  sqlstore.Dialect
		killable func(testing.TB) (*sql.DB, func() error)
	}{
		{"Postgres", sqlstore.Postgres, testdb.PostgresKillable},
		{"MySQL", sqlstore.MySQL, testdb.MySQLKillable},
	} {
		t.Run(b.name, func(t *testing.T) {
			db, kill := b.killable(t)
			s := newStore(t, db, b.dialect)
			storagetest.Disrupted(t, s, kill)
		})
	}
}

func BenchmarkStore(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			db := be.open(b)
			storagetest.Benchmark(b, func(t testing.TB) storage.Store { return newStore(t, db, be.dialect) })
		})
	}
}

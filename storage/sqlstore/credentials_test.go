package sqlstore

import (
	"context"
	"database/sql"
	"testing"

	"github.com/mfakit/mfakit/internal/testdb"
)

// TestCredentialsMigrationRerun: version 5 runs again without error, as
// after a crash before it was recorded, and keeps the stored rows.
func TestCredentialsMigrationRerun(t *testing.T) {
	for _, b := range []struct {
		name    string
		dialect Dialect
		open    func(testing.TB) *sql.DB
	}{
		{"SQLite", SQLite, testdb.SQLite},
		{"Postgres", Postgres, testdb.Postgres},
		{"MySQL", MySQL, testdb.MySQL},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			db := b.open(t)
			s, err := New(db, b.dialect, Options{TablePrefix: testdb.Unique("cr")})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for _, table := range s.Tables() {
					db.Exec("DROP TABLE IF EXISTS " + table)
				}
			})
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(s.q("INSERT INTO "+s.credentials+" ("+credentialCols+") VALUES (?, ?, ?, ?, ?, ?, ?)"),
				[]byte{1}, "u", "n", []byte{2}, 3, 4, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(s.q("DELETE FROM "+s.versions+" WHERE version = ?"), 5); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("rerun of version 5: %v", err)
			}
			if cs, err := s.Credentials(ctx, "u"); err != nil || len(cs) != 1 || cs[0].SignCount != 3 {
				t.Fatalf("Credentials after the rerun = %+v, %v", cs, err)
			}
		})
	}
}

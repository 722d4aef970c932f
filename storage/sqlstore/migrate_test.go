package sqlstore

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
)

// TestUpgradeLastAt migrates to version 2, stores failure state the way
// version 2 did, and upgrades: the old rows get the migration time as
// LastAt (so DeleteExpired does not forget them at once), new rows their
// own, and a rerun of version 3 (as after a crash before it was recorded)
// succeeds.
func TestUpgradeLastAt(t *testing.T) {
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
			migrated := time.UnixMicro(1_700_000_000_000_000).UTC()
			s, err := New(db, b.dialect, Options{TablePrefix: testdb.Unique("up"), Now: func() time.Time { return migrated }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for _, table := range s.Tables() {
					db.Exec("DROP TABLE IF EXISTS " + table)
				}
			})
			if err := s.migrateTo(ctx, 2); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(s.q("INSERT INTO "+s.attempts+" (username, factor, failures, locked_until) VALUES (?, ?, ?, ?)"),
				"old", "AUTHENTICATOR", 2, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			a, err := s.Attempts(ctx, "old", storage.Authenticator)
			if err != nil || a.Failures != 2 || !a.LastAt.Equal(migrated) || !a.LockedUntil.IsZero() {
				t.Fatalf("old row after the upgrade: %+v, %v; want 2 failures, LastAt %v", a, err, migrated)
			}
			// The old row is kept by a cleanup right after the upgrade.
			if _, err := s.DeleteExpired(ctx, migrated.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if a, _ := s.Attempts(ctx, "old", storage.Authenticator); a.Failures != 2 {
				t.Fatalf("cleanup after the upgrade forgot the old count: %+v", a)
			}
			now := migrated.Add(time.Minute)
			p := storage.LockPolicy{MaxFailures: 3, Base: time.Minute, Max: time.Hour}
			if a, err := s.ReserveAttempt(ctx, "old", storage.Authenticator, now, p); err != nil || a.Failures != 3 || !a.LastAt.Equal(now) {
				t.Fatalf("reservation after the upgrade: %+v, %v", a, err)
			}
			if a, err := s.ReserveAttempt(ctx, "new", storage.Authenticator, now, p); err != nil || !a.LastAt.Equal(now) {
				t.Fatalf("new row after the upgrade: %+v, %v", a, err)
			}
			// Rerun version 3 as if the crash came before it was recorded.
			if _, err := db.Exec(s.q("DELETE FROM "+s.versions+" WHERE version = ?"), 3); err != nil {
				t.Fatal(err)
			}
			if b.dialect == SQLite { // its migration is one transaction: undo it all
				if _, err := db.Exec("ALTER TABLE " + s.attempts + " DROP COLUMN last_at"); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("rerun of version 3: %v", err)
			}
		})
	}
}

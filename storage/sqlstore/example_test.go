package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// Choose a Store: SQLite in a file, migrated at start-up; PostgreSQL and
// MySQL take the same three lines with their driver and dialect.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "mfakit-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "mfa.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.SQLite, sqlstore.Options{})
	if err != nil {
		panic(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		panic(err)
	}
	svc, err := mfa.New(store, &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{})
	if err != nil {
		panic(err)
	}
	st, _ := svc.Status(context.Background(), "alice")
	fmt.Println(st.Available, len(st.Details))
	// Output: [AUTHENTICATOR EMAIL] 0
}

package sqlstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Dialect names the SQL database behind a *sql.DB.
type Dialect int

// The supported dialects.
const (
	// SQLite, e.g. with modernc.org/sqlite. Open it with a busy timeout and
	// immediate transactions, see the package doc.
	SQLite Dialect = iota + 1
	// Postgres, e.g. with github.com/jackc/pgx/v5/stdlib.
	Postgres
	// MySQL or MariaDB, with github.com/go-sql-driver/mysql.
	MySQL
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

func (d Dialect) valid() bool { return d >= SQLite && d <= MySQL }

// types returns the column types of the dialect: text key, bytes, bool.
func (d Dialect) types() (key, blob, boolean string) {
	switch d {
	case Postgres:
		return "TEXT", "BYTEA", "BOOLEAN"
	case MySQL:
		// VARBINARY compares bytes exactly: no case folding, no trailing-space padding.
		return "VARBINARY(384)", "VARBINARY(512)", "BOOLEAN"
	}
	return "TEXT", "BLOB", "BOOLEAN"
}

// rebind rewrites ? placeholders to $n for Postgres.
func (d Dialect) rebind(q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// upsert returns "INSERT ... ON CONFLICT/DUPLICATE ... UPDATE set" where set
// uses NEW(col) for the inserted value.
func (d Dialect) upsert(table, cols string, keys string, set string) string {
	n := len(strings.Split(cols, ","))
	ph := strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
	newRef := func(c string) string { return "excluded." + c }
	head := "ON CONFLICT (" + keys + ") DO UPDATE SET"
	if d == MySQL {
		newRef = func(c string) string { return "VALUES(" + c + ")" }
		head = "ON DUPLICATE KEY UPDATE"
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) %s %s", table, cols, ph, head, replaceRefs(set, "NEW(", newRef))
}

func replaceRefs(s, marker string, ref func(string) string) string {
	for {
		i := strings.Index(s, marker)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], ')')
		s = s[:i] + ref(s[i+len(marker):i+j]) + s[i+j+1:]
	}
}

// insertIgnore returns an INSERT that does nothing when the key exists.
func (d Dialect) insertIgnore(table, cols, keys string) string {
	n := len(strings.Split(cols, ","))
	ph := strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
	first := strings.TrimSpace(strings.Split(keys, ",")[0])
	if d == MySQL {
		return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s = %s", table, cols, ph, first, first)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO NOTHING", table, cols, ph, keys)
}

// forUpdate is the row-lock suffix of a SELECT in a transaction. SQLite
// has none: its write transactions are already exclusive.
func (d Dialect) forUpdate() string {
	if d == SQLite {
		return ""
	}
	return " FOR UPDATE"
}

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// user is a row of the users table.
type user struct {
	ID      int64
	Name    string // an email address, lower case
	IsAdmin bool
	// SessionsValidAfter ends every session signed in at or before it
	// ("sign out everywhere").
	SessionsValidAfter time.Time
}

// Role names what the user may do: "administrator" or "user".
func (u *user) Role() string {
	if u.IsAdmin {
		return "administrator"
	}
	return "user"
}

// errBadCredentials is a wrong username or password; which one is not said.
var errBadCredentials = errors.New("wrong username or password")

// errUserExists is a sign-up under a name that is taken.
var errUserExists = errors.New("that username is taken")

// users is the app's user table. Ids come from AUTOINCREMENT, so a name
// taken again after an account is deleted gets a new id, and the old
// account's sessions (which hold the id) stay dead.
type users struct {
	db  *sql.DB
	now func() time.Time
	// cost is the bcrypt cost of new hashes; dummyHash is compared
	// against when a name is unknown, so a wrong name costs as much time
	// as a wrong password.
	cost      int
	dummyHash []byte
}

func newUsers(db *sql.DB, cost int, now func() time.Time) (*users, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("no such user"), cost)
	if err != nil {
		return nil, err
	}
	return &users{db: db, now: now, cost: cost, dummyHash: dummy}, nil
}

const usersSchema = `CREATE TABLE IF NOT EXISTS users (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	username TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	is_admin INTEGER NOT NULL DEFAULT 0,
	sessions_valid_after INTEGER NOT NULL DEFAULT 0 -- Unix microseconds
)`

// seedUsers are created when the table is empty (the first start).
var seedUsers = []struct {
	name, password string
	admin          bool
}{
	{"alice@example.com", "alice-password", false},
	{"admin@example.com", "admin-password", true},
}

// migrate creates the table and, on the first start, the seed users.
func (us *users) migrate(ctx context.Context) error {
	if _, err := us.db.ExecContext(ctx, usersSchema); err != nil {
		return fmt.Errorf("users table: %w", err)
	}
	var n int
	if err := us.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, s := range seedUsers {
		if _, err := us.create(ctx, s.name, s.password, s.admin); err != nil {
			return fmt.Errorf("seed user %s: %w", s.name, err)
		}
	}
	return nil
}

func normalizeName(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// create adds a user; errUserExists when the name is taken.
func (us *users) create(ctx context.Context, name, password string, admin bool) (*user, error) {
	name = normalizeName(name)
	if name == "" || !strings.Contains(name, "@") || len(name) > 254 {
		return nil, errors.New("the username must be an email address")
	}
	if len(password) < 8 || len(password) > 72 {
		return nil, errors.New("the password must be 8 to 72 bytes long")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), us.cost)
	if err != nil {
		return nil, err
	}
	res, err := us.db.ExecContext(ctx,
		`INSERT INTO users (username, password_hash, is_admin) VALUES (?, ?, ?) ON CONFLICT (username) DO NOTHING`,
		name, string(hash), admin)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, errUserExists
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	return &user{ID: id, Name: name, IsAdmin: admin}, nil
}

// authenticate checks a username and password.
func (us *users) authenticate(ctx context.Context, name, password string) (*user, error) {
	var hash string
	u, err := us.scan(us.db.QueryRowContext(ctx, `SELECT id, username, is_admin, sessions_valid_after, password_hash
		FROM users WHERE username = ?`, normalizeName(name)), &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		bcrypt.CompareHashAndPassword(us.dummyHash, []byte(password))
		return nil, errBadCredentials
	case err != nil:
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return nil, errBadCredentials
	}
	return u, nil
}

// byID returns the user with id, or sql.ErrNoRows.
func (us *users) byID(ctx context.Context, id int64) (*user, error) {
	return us.scan(us.db.QueryRowContext(ctx, `SELECT id, username, is_admin, sessions_valid_after
		FROM users WHERE id = ?`, id))
}

// byName returns the user called name, or sql.ErrNoRows.
func (us *users) byName(ctx context.Context, name string) (*user, error) {
	return us.scan(us.db.QueryRowContext(ctx, `SELECT id, username, is_admin, sessions_valid_after
		FROM users WHERE username = ?`, normalizeName(name)))
}

// list returns every user, by name.
func (us *users) list(ctx context.Context) ([]*user, error) {
	rows, err := us.db.QueryContext(ctx, `SELECT id, username, is_admin, sessions_valid_after FROM users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all []*user
	for rows.Next() {
		u, err := us.scan(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, u)
	}
	return all, rows.Err()
}

// delete removes the user; deleting one that is gone is not an error.
func (us *users) delete(ctx context.Context, id int64) error {
	_, err := us.db.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
	return err
}

// endSessions ends every session of the user called name: those signed in
// until now stop counting (see sessionUser).
func (us *users) endSessions(ctx context.Context, name string) error {
	_, err := us.db.ExecContext(ctx, `UPDATE users SET sessions_valid_after = ? WHERE username = ?`,
		us.now().UnixMicro(), normalizeName(name))
	return err
}

func (us *users) scan(row interface{ Scan(...any) error }, extra ...any) (*user, error) {
	var u user
	var validAfter int64
	if err := row.Scan(append([]any{&u.ID, &u.Name, &u.IsAdmin, &validAfter}, extra...)...); err != nil {
		return nil, err
	}
	u.SessionsValidAfter = time.UnixMicro(validAfter)
	return &u, nil
}

package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// dbBaseline is the database baseline: a bare net/http handler with the
// bare baseline's header check and JSON decode that also runs the minimal
// statement(s) each route needs, through the backend's driver and the kind
// of pool the kit has, on tables (or keys) of its own with the shape of
// the kit's, pre-populated for the same users. It does nothing else: no
// TOTP check, no encryption, no lockout logic. What the kit costs beyond
// it is the kit's own work.
//
// The user is the n of "Bearer t<n>" (the kit's identity system looks it
// up the same way). A check whose code is wrongCode is a failed one: it
// counts a failure; any other is a good one: it records the user's next
// step, 1, 2, 3, … (a per-user counter), so every such write succeeds. A
// per-user lock keeps two good checks of one user in order between the
// counter and the database; it is never contended unless a user has two
// checks in flight (fewer users than connections, or a stalled request).
type dbBaseline struct {
	users []string   // user n's name; 0..len(steps)-1 have an enrollment
	steps []userStep // per enrolled user
	store dbStore
	srv   *server
}

// userStep is the last step recorded for a user.
type userStep struct {
	mu   sync.Mutex
	last int64
}

// dbStore is a backend's minimal statements.
type dbStore interface {
	// populate writes a verified authenticator enrollment for each user.
	populate(ctx context.Context, users []string) error
	// status reads the user's enrollments: factor → its status, for the
	// verified or still pending ones (as the kit's Status shows them).
	status(ctx context.Context, user string) (map[string]factorStatus, error)
	// accept records step as the user's last accepted step if it is
	// newer; false when it is not.
	accept(ctx context.Context, user string, step int64) (bool, error)
	// fail counts a failed check.
	fail(ctx context.Context, user string) error
	// begin writes a pending enrollment with a new random secret.
	begin(ctx context.Context, user string) error
	// close removes the tables or keys and closes the connections.
	close()
}

// factorStatus is a factor's entry in the mfaDetails body.
type factorStatus struct {
	Verified bool `json:"verified"`
}

// detailsBody is the mfaDetails body.
type detailsBody struct {
	Availables []string                `json:"availables"`
	Details    map[string]factorStatus `json:"details"`
}

// factor is the one factor the load enrolls.
const factor = "AUTHENTICATOR"

// startDBBaseline opens the database baseline of o.backend, fills it with
// the enrollments of users 0..o.users-1 and serves it; nil for the memory
// backend, which has none.
func startDBBaseline(ctx context.Context, o options) (*dbBaseline, error) {
	prefix := fmt.Sprintf("ltb%d_", time.Now().UnixNano())
	var store dbStore
	var err error
	switch o.backend {
	case "memory":
		return nil, nil
	case "sqlite", "postgres":
		store, err = openSQLBaseline(ctx, o.backend, prefix)
	case "redis":
		store, err = openRedisBaseline("mfakit-" + prefix)
	default:
		return nil, fmt.Errorf("unknown -backend %q", o.backend)
	}
	if err != nil {
		return nil, fmt.Errorf("database baseline: %w", err)
	}
	b := &dbBaseline{users: make([]string, 2*o.users), steps: make([]userStep, o.users), store: store}
	for i := range b.users {
		b.users[i] = userName(i)
	}
	if err := store.populate(ctx, b.users[:o.users]); err != nil {
		store.close()
		return nil, fmt.Errorf("database baseline: %w", err)
	}
	if b.srv, err = serve(b); err != nil {
		store.close()
		return nil, err
	}
	return b, nil
}

// close stops the server and removes the baseline's data.
func (b *dbBaseline) close() {
	b.srv.close()
	b.store.close()
}

// user returns n of an Authorization header "Bearer t<n>".
func (b *dbBaseline) user(header string) (int, bool) {
	s, ok := strings.CutPrefix(header, "Bearer t")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && n < len(b.users)
}

func (b *dbBaseline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, ok := b.user(r.Header.Get("Authorization"))
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body checkBody
	if !readBody(r, &body) {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	ctx, user := r.Context(), b.users[n]
	var err error
	switch route := r.Method + " " + r.URL.Path; {
	case route == "GET /oauth/users/mfaDetails":
		details, err := b.store.status(ctx, user)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(detailsBody{Availables: []string{"AUTHENTICATOR", "EMAIL"}, Details: details})
		return
	case route == "PUT /oauth/users/mfa/verify" && body.TOTP == wrongCode:
		err = b.store.fail(ctx, user)
	case route == "PUT /oauth/users/mfa/verify":
		if n >= len(b.steps) {
			http.Error(w, "not enrolled", http.StatusNotFound)
			return
		}
		var accepted bool
		st := &b.steps[n]
		st.mu.Lock()
		if accepted, err = b.store.accept(ctx, user, st.last+1); accepted {
			st.last++
		}
		st.mu.Unlock()
		if err == nil && !accepted {
			http.Error(w, "step not newer", http.StatusConflict)
			return
		}
	case route == "PUT /users/mfa/associateQRCode":
		err = b.store.begin(ctx, user)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, baselineBody)
}

// userName is the name of user n, the kit's and the baselines'.
func userName(n int) string { return fmt.Sprintf("user%07d@example.com", n) }

// randomSecret returns a new random stand-in for a sealed TOTP secret
// (the kit's are 48 bytes: a 20-byte key, a nonce and a tag).
func randomSecret() []byte {
	b := make([]byte, 48)
	rand.Read(b)
	return b
}

// sqlBaseline runs the baseline's statements on tables the kit's own
// migration creates (a sqlstore.Store with a prefix of their own), so
// they have the kit's columns, keys, indexes and fill factor. Every
// statement is prepared once, as the kit prepares its own, and runs in
// autocommit: each write is one durable transaction. Placeholders are
// $1, $2, …: PostgreSQL's, and SQLite numbers them in that order too.
type sqlBaseline struct {
	db                                          *sql.DB
	statusStmt, acceptStmt, failStmt, beginStmt *sql.Stmt
	insert                                      string // the populate statement's start
	closeAll                                    func()
	backend                                     string
	tables                                      []string // vacuumed once filled
}

// openSQLBaseline creates the baseline's tables in a database opened as
// the kit's is (openSQL) and prepares its statements:
//
//   - status: SELECT the user's enrollments (the kit's query);
//   - accept: UPDATE … SET last_step = step WHERE username = user AND
//     factor = 'AUTHENTICATOR' AND last_step < step;
//   - fail: INSERT a failure row ON CONFLICT (username, factor) DO UPDATE
//     SET failures = failures + 1;
//   - begin: INSERT a pending enrollment ON CONFLICT DO UPDATE its id,
//     secret and times (unless verified).
func openSQLBaseline(ctx context.Context, backend, prefix string) (*sqlBaseline, error) {
	s, db, closeAll, err := openSQLStore(ctx, backend, prefix)
	if err != nil {
		return nil, err
	}
	enrollments, attempts := prefix+"enrollments", prefix+"attempts"
	if tables := s.Tables(); !slices.Contains(tables, enrollments) || !slices.Contains(tables, attempts) {
		closeAll()
		return nil, fmt.Errorf("sqlstore's tables are %v; want %s and %s among them", tables, enrollments, attempts)
	}
	b := &sqlBaseline{db: db, closeAll: closeAll, backend: backend, tables: s.Tables(),
		insert: "INSERT INTO " + enrollments + " (username, factor, id, verified, secret, key_id, last_step, created_at, verified_at, expires_at) VALUES "}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&b.statusStmt, "SELECT username, factor, id, verified, secret, key_id, last_step, created_at, verified_at, expires_at FROM " +
			enrollments + " WHERE username = $1 ORDER BY factor"},
		{&b.acceptStmt, "UPDATE " + enrollments + " SET last_step = $1 WHERE username = $2 AND factor = '" + factor + "' AND last_step < $3"},
		{&b.failStmt, "INSERT INTO " + attempts + " (username, factor, failures, locked_until, last_at) VALUES ($1, '" + factor + "', 1, 0, $2)" +
			" ON CONFLICT (username, factor) DO UPDATE SET failures = " + attempts + ".failures + 1, last_at = excluded.last_at"},
		{&b.beginStmt, b.insert + "($1, '" + factor + "', $2, FALSE, $3, 'k1', 0, $4, 0, $5)" +
			" ON CONFLICT (username, factor) DO UPDATE SET id = excluded.id, secret = excluded.secret, key_id = excluded.key_id," +
			" last_step = 0, created_at = excluded.created_at, verified_at = 0, expires_at = excluded.expires_at WHERE " + enrollments + ".verified = FALSE"},
	} {
		if *p.stmt, err = db.PrepareContext(ctx, p.query); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *sqlBaseline) populate(ctx context.Context, users []string) error {
	const batch = 500
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UnixMicro()
	for len(users) > 0 {
		part := users[:min(batch, len(users))]
		users = users[len(part):]
		var q strings.Builder
		q.WriteString(b.insert)
		args := make([]any, 0, 5*len(part))
		for i, u := range part {
			if i > 0 {
				q.WriteByte(',')
			}
			n := 5 * i
			fmt.Fprintf(&q, "($%d, '%s', $%d, TRUE, $%d, 'k1', 0, $%d, $%d, 0)", n+1, factor, n+2, n+3, n+4, n+5)
			args = append(args, u, rand.Text(), randomSecret(), now, now)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return vacuum(ctx, b.backend, b.db, b.tables)
}

func (b *sqlBaseline) status(ctx context.Context, user string) (map[string]factorStatus, error) {
	rows, err := b.statusStmt.QueryContext(ctx, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	details := map[string]factorStatus{}
	now := time.Now().UnixMicro()
	for rows.Next() {
		var username, factor, id, keyID string
		var verified bool
		var secret []byte
		var lastStep, created, verifiedAt, expires int64
		if err := rows.Scan(&username, &factor, &id, &verified, &secret, &keyID, &lastStep, &created, &verifiedAt, &expires); err != nil {
			return nil, err
		}
		if verified || now < expires {
			details[factor] = factorStatus{Verified: verified}
		}
	}
	return details, rows.Err()
}

func (b *sqlBaseline) accept(ctx context.Context, user string, step int64) (bool, error) {
	res, err := b.acceptStmt.ExecContext(ctx, step, user, step)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (b *sqlBaseline) fail(ctx context.Context, user string) error {
	_, err := b.failStmt.ExecContext(ctx, user, time.Now().UnixMicro())
	return err
}

func (b *sqlBaseline) begin(ctx context.Context, user string) error {
	now := time.Now()
	_, err := b.beginStmt.ExecContext(ctx, user, rand.Text(), randomSecret(), now.UnixMicro(), now.Add(10*time.Minute).UnixMicro())
	return err
}

func (b *sqlBaseline) close() {
	for _, s := range []*sql.Stmt{b.statusStmt, b.acceptStmt, b.failStmt, b.beginStmt} {
		if s != nil {
			s.Close()
		}
	}
	b.closeAll()
}

// redisBaseline keeps the baseline's records as the kit's redisstore does:
// an enrollment is a hash under "<prefix>{base64(user)}:e:AUTHENTICATOR"
// with the same fields (id, v, s, k, l, c, va, x), a failure count a hash
// under "…:a:AUTHENTICATOR". Each operation is one command:
//
//   - status: HGETALL of the enrollment;
//   - accept: one EVALSHA of acceptNewer, which sets l (the last step)
//     if the given step is newer: the kit's "accept this step once", with
//     neither its request id nor the clearing of the failure count;
//   - fail: HINCRBY of the failure count;
//   - begin: HSET of a pending enrollment's fields.
type redisBaseline struct {
	rdb    *redis.Client
	prefix string
}

// acceptNewer sets field l of the hash KEYS[1] to ARGV[1] if the hash
// exists and ARGV[1] is greater; it returns 1 if it did, else 0.
var acceptNewer = redis.NewScript(`
local l = tonumber(redis.call('HGET', KEYS[1], 'l'))
if l == nil or l >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[1])
return 1`)

func openRedisBaseline(prefix string) (*redisBaseline, error) {
	rdb, err := openRedis()
	if err != nil {
		return nil, err
	}
	return &redisBaseline{rdb: rdb, prefix: prefix}, nil
}

func (b *redisBaseline) key(user, kind string) string {
	return b.prefix + "{" + base64.RawURLEncoding.EncodeToString([]byte(user)) + "}:" + kind + ":" + factor
}

func (b *redisBaseline) populate(ctx context.Context, users []string) error {
	now := time.Now().UnixMicro()
	for part := range slices.Chunk(users, 1000) {
		pipe := b.rdb.Pipeline()
		for _, u := range part {
			pipe.HSet(ctx, b.key(u, "e"), "id", rand.Text(), "v", "1", "s", randomSecret(), "k", "k1", "l", "0",
				"c", now, "va", now, "x", "0")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	return acceptNewer.Load(ctx, b.rdb).Err()
}

func (b *redisBaseline) status(ctx context.Context, user string) (map[string]factorStatus, error) {
	h, err := b.rdb.HGetAll(ctx, b.key(user, "e")).Result()
	if err != nil {
		return nil, err
	}
	details := map[string]factorStatus{}
	if len(h) > 0 {
		expires, _ := strconv.ParseInt(h["x"], 10, 64)
		if verified := h["v"] == "1"; verified || time.Now().UnixMicro() < expires {
			details[factor] = factorStatus{Verified: verified}
		}
	}
	return details, nil
}

func (b *redisBaseline) accept(ctx context.Context, user string, step int64) (bool, error) {
	n, err := acceptNewer.Run(ctx, b.rdb, []string{b.key(user, "e")}, step).Int()
	return n == 1, err
}

func (b *redisBaseline) fail(ctx context.Context, user string) error {
	return b.rdb.HIncrBy(ctx, b.key(user, "a"), "f", 1).Err()
}

func (b *redisBaseline) begin(ctx context.Context, user string) error {
	now := time.Now()
	return b.rdb.HSet(ctx, b.key(user, "e"), "id", rand.Text(), "v", "0", "s", randomSecret(), "k", "k1", "l", "0",
		"c", now.UnixMicro(), "va", "0", "x", now.Add(10*time.Minute).UnixMicro()).Err()
}

func (b *redisBaseline) close() {
	deleteKeys(context.Background(), b.rdb, b.prefix+"*")
	b.rdb.Close()
}

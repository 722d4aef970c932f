package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mailer/smtpmail"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
	"github.com/mfakit/mfakit/storage/redisstore"
	"github.com/mfakit/mfakit/storage/sqlstore"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// app is the demo server: the kit, the identity system and the token
// endpoint, wired together.
type app struct {
	id          *identity
	svc         *mfa.Service
	api         *httpx.Handlers
	storageName string
	cleaner     storage.Cleaner
	// clientID and clientSecret are the demo client the page signs in with.
	clientID, clientSecret string
	// rpID and rpOrigins are the passkeys' relying party (none when off),
	// which the page shows so that people open it where passkeys work.
	rpID      string
	rpOrigins []string
	closers   []io.Closer
}

func newApp(o options, out io.Writer) (*app, error) {
	users, err := parseUsers(o.users)
	if err != nil {
		return nil, err
	}
	clients, err := parseClients(o.clients)
	if err != nil {
		return nil, err
	}
	origins, err := o.passkeyOrigins()
	if err != nil {
		return nil, err
	}
	a := &app{id: newIdentity(users, clients), rpOrigins: origins}
	if len(origins) > 0 {
		a.rpID = o.rpID
	}
	for _, entry := range strings.Split(o.clients, ",") { // the first client signs the page in
		if id, secret, ok := strings.Cut(strings.TrimSpace(entry), ":"); ok {
			a.clientID, a.clientSecret = id, secret
			break
		}
	}
	store, keys, err := a.openStore(context.Background(), o.db, o.keyFile)
	if err != nil {
		a.Close()
		return nil, err
	}
	mail, err := a.openMailer(o, out)
	if err != nil {
		a.Close()
		return nil, err
	}
	events := o.events
	if events == nil {
		events = mfa.SlogEvents(slog.Default())
	}
	// Passkeys: on unless -rp-id is empty; the page must be opened at one
	// of the origins (by default http://localhost:<port>, not 127.0.0.1).
	var passkeys *mfa.WebAuthnConfig
	if a.rpID != "" {
		passkeys = &mfa.WebAuthnConfig{RPID: a.rpID, RPDisplayName: "mfakit demo", RPOrigins: a.rpOrigins}
	}
	// A reset that closes every way back (an admin reset, or the removal
	// of the last factor) ends the user's sessions: their tokens, and the
	// MFA time step-up relies on, stop counting (S24).
	a.svc, err = mfa.New(store, mail, keys, mfa.Config{Issuer: "mfakit demo",
		EmailResendInterval: o.emailInterval, Directory: a.id, Events: events, EndSessions: a.id.endSessions,
		WebAuthn: passkeys})
	if err != nil {
		a.Close()
		return nil, err
	}
	// OAuth style: Bearer access tokens from /oauth/token, and the demo's
	// clients for the lost-phone routes (resetMyQRCodeEnroll with a state
	// token, the challenge switch), as before.
	a.api = httpx.New(a.svc, httpx.Bearer(a.id), httpx.Config{Clients: a.id})
	return a, nil
}

// openMailer picks SMTP delivery when -smtp is set, else printing.
func (a *app) openMailer(o options, out io.Writer) (mailer.Mailer, error) {
	if o.smtp == "" {
		return &mailer.Writer{W: out}, nil
	}
	security := map[string]smtpmail.Security{"starttls": smtpmail.StartTLS, "tls": smtpmail.ImplicitTLS,
		"plaintext": smtpmail.Plaintext}
	sec, ok := security[o.smtpSecurity]
	if !ok {
		return nil, fmt.Errorf("-smtp-security %q: want starttls, tls or plaintext", o.smtpSecurity)
	}
	m, err := smtpmail.New(smtpmail.Config{Addr: o.smtp, From: o.mailFrom, Username: o.smtpUser,
		Password: o.smtpPassword, Security: sec})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, m)
	return m, nil
}

// openStore picks the storage named by -db: empty = memory (with a random
// key), postgres://... = PostgreSQL, redis://... = Redis, anything else =
// a SQLite file. Durable stores need a durable key: it is read from
// keyFile, or created there.
func (a *app) openStore(ctx context.Context, db, keyFile string) (storage.Store, *mfa.Keyring, error) {
	if db == "" {
		a.storageName = "memory"
		return memstore.New(), mfa.NewRandomKeyring(), nil
	}
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		a.storageName = "postgres"
	case strings.HasPrefix(db, "redis://"), strings.HasPrefix(db, "rediss://"):
		a.storageName = "redis"
	default:
		a.storageName = "sqlite:" + db
	}
	if keyFile == "" {
		keyFile = "mfakit-demo.key"
		if strings.HasPrefix(a.storageName, "sqlite:") {
			keyFile = db + ".key"
		}
	}
	if a.storageName == "redis" {
		opt, err := redis.ParseURL(db)
		if err != nil {
			return nil, nil, fmt.Errorf("-db: %w", err)
		}
		rdb := redis.NewClient(opt)
		a.closers = append(a.closers, rdb)
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, nil, fmt.Errorf("-db redis: %w", err)
		}
		store, err := redisstore.New(rdb, redisstore.Options{})
		if err != nil {
			return nil, nil, err
		}
		keys, err := loadOrCreateKey(keyFile)
		return store, keys, err
	}
	var sqlDB *sql.DB
	var dialect sqlstore.Dialect
	var err error
	if a.storageName == "postgres" {
		dialect = sqlstore.Postgres
		sqlDB, err = sql.Open("pgx", db)
		if err == nil {
			setPostgresPool(sqlDB)
		}
	} else {
		dialect = sqlstore.SQLite
		// The settings the store needs, and a pool of a few connections,
		// all kept: SQLite has one writer at a time, and more connections
		// would only wait in its busy handler instead of database/sql's
		// queue (see sqlstore.SQLiteMaxConns).
		sqlDB, err = sqlstore.OpenSQLite(db)
	}
	if err != nil {
		return nil, nil, err
	}
	a.closers = append(a.closers, sqlDB)
	store, err := sqlstore.New(sqlDB, dialect, sqlstore.Options{})
	if err != nil {
		return nil, nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		return nil, nil, fmt.Errorf("-db %s: %w", a.storageName, err)
	}
	keys, err := loadOrCreateKey(keyFile)
	if err != nil {
		return nil, nil, err
	}
	a.cleaner = store
	return store, keys, nil
}

// setPostgresPool sizes db's pool so that it does not churn under load.
// database/sql keeps only 2 idle connections by default: with more
// requests in flight than that, every query beyond the second finds no
// idle connection, opens a new one (TCP, startup, authentication: far
// dearer than the query) and closes it after, so the server reconnects
// constantly. Here as many connections are kept idle as may be open, and
// open ones are bounded at 8 per core (enough to keep this process's
// cores busy while others wait on the network; requests beyond that wait
// in database/sql's queue, which is cheaper than more server processes
// competing for the same CPUs). An idle one is closed after 5 minutes, so
// a quiet app gives the server its connections back.
func setPostgresPool(db *sql.DB) {
	n := 8 * runtime.GOMAXPROCS(0)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
}

// loadOrCreateKey reads a hex AES-256 key from path, creating the file
// (mode 0600) with a fresh random key if it does not exist.
func loadOrCreateKey(path string) (*mfa.Keyring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, mfa.KeySize)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating key file: %w", err)
		}
		if _, err := fmt.Fprintln(f, hex.EncodeToString(key)); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return mfa.NewKeyring("demo", map[string][]byte{"demo": key})
	}
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != mfa.KeySize {
		return nil, fmt.Errorf("key file %s: want %d bytes as hex", path, mfa.KeySize)
	}
	return mfa.NewKeyring("demo", map[string][]byte{"demo": key})
}

// cleanup removes expired records every interval until ctx is done.
func (a *app) cleanup(ctx context.Context, interval time.Duration) {
	if a.cleaner == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n, err := a.cleaner.DeleteExpired(ctx, now); err != nil {
				slog.Error("cleanup failed", "err", err)
			} else if n > 0 {
				slog.Info("cleanup", "removed", n)
			}
		}
	}
}

// Close releases the storage.
func (a *app) Close() error {
	var errs []error
	for _, c := range a.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Handler serves the kit's routes, the token endpoint and the index page.
func (a *app) Handler() http.Handler {
	mux := http.NewServeMux()
	a.api.Mount(mux, "")
	mux.HandleFunc("/oauth/token", a.token)
	static, _ := fs.Sub(web, "web")
	mux.Handle("GET /{$}", a.page(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})))
	mux.Handle("GET /static/", a.page(http.StripPrefix("/static/", http.FileServerFS(static))))
	mux.HandleFunc("GET /demo-config.json", a.demoConfig)
	mux.Handle("GET /openapi.yaml", httpx.OpenAPIHandler())
	mux.Handle("/", httpx.NotFound(httpx.DefaultErrorHandler))
	return mux
}

// tokenResponse is the OAuth answer of a password grant.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// token serves POST /oauth/token with Basic client credentials and a
// password grant, or a state_token grant completing a sign-in.
func (a *app) token(w http.ResponseWriter, r *http.Request) {
	// The sign-in begins now: a session whose checks ran before its user's
	// sessions were ended (S24) must not count, even if issued after.
	since := a.id.now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusMethodNotAllowed, httpx.CodeMethodNotAllowed, "use POST"))
		return
	}
	// The kit's audit events (and an email code's sending) learn the
	// client's address from the context, as on the kit's own routes;
	// Auth.ClientIP honours httpx.Config.TrustedProxies the same way.
	r = r.WithContext(mfa.WithRequestInfo(r.Context(), mfa.RequestInfo{ClientIP: a.api.Auth().ClientIP(r)}))
	if _, err := a.api.Auth().CheckClient(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="mfakit demo"`)
		httpx.WriteProblem(w, httpx.ProblemFor(err))
		return
	}
	// Room for a passkey's assertion: a credential ID may have 1023
	// bytes, and the JSON carries it twice in base64url, form-encoded.
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, httpx.CodeInvalidRequest, "the body must be a form"))
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "password":
		user, password := r.PostForm.Get("username"), r.PostForm.Get("password")
		if !a.id.checkPassword(user, password) {
			httpx.WriteProblem(w, httpx.NewProblem(http.StatusUnauthorized, httpx.CodeUnauthorized, "wrong username or password"))
			return
		}
		// The password is right: the kit decides whether a second factor is due.
		ch, err := a.svc.StartChallenge(r.Context(), user, a.id.email(user))
		if err != nil {
			httpx.DefaultErrorHandler(w, r, err)
			return
		}
		if ch.Status != mfa.ChallengeNone {
			a.api.WriteChallenge(w, ch)
			return
		}
		a.writeToken(w, user, since, time.Time{})
	case "state_token":
		res, err := a.api.StateTokenGrant(r)
		if err != nil {
			httpx.DefaultErrorHandler(w, r, err)
			return
		}
		// The code was checked after since: the MFA time is no later.
		mfaAt := since
		if res.NeedsEnrollment {
			// Let the user in to enroll; the session has not passed MFA.
			mfaAt = time.Time{}
		}
		a.writeToken(w, res.User, since, mfaAt)
	default:
		httpx.WriteProblem(w, httpx.NewProblem(http.StatusBadRequest, httpx.CodeInvalidRequest,
			"grant_type: must be password or state_token"))
	}
}

func (a *app) writeToken(w http.ResponseWriter, user string, since, mfaAt time.Time) {
	token, ttl := a.id.issue(user, since, mfaAt)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenResponse{AccessToken: token, TokenType: "bearer", ExpiresIn: int(ttl.Seconds())})
}

//go:embed web
var web embed.FS

// contentSecurityPolicy allows the page's own script and style, the QR
// code's data URI and calls to this origin; nothing inline, nothing else.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// page serves the demo's web page and its static files with a strict CSP.
func (a *app) page(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// demoConfig tells the page which OAuth client to use for sign-in. The
// demo's client is public by design; a real page would use a login flow
// of the host's.
func (a *app) demoConfig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"clientId": a.clientID, "clientSecret": a.clientSecret,
		"rpId": a.rpID, "rpOrigins": a.rpOrigins})
}

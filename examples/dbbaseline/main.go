// Command dbbaseline is the bare baseline of the demo's GET
// /oauth/users/mfaDetails on PostgreSQL, for measuring the kit against it
// with an independent load client (see docs/performance.md): plain
// net/http and database/sql with pgx, the same pool settings as the demo,
// a bearer token looked up in memory, the one SELECT the kit runs for a
// user's enrollments (on the demo's table), and a JSON body of the same
// shape written with encoding/json.
//
//	go run ./examples/dbbaseline -db "$MFAKIT_POSTGRES_DSN" -addr 127.0.0.1:18091 \
//	  -user alice@example.com -token "$TOKEN"
//	wrk -t2 -c32 -d10s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18091/oauth/users/mfaDetails
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18091", "listen address")
	dsn := flag.String("db", os.Getenv("MFAKIT_POSTGRES_DSN"), "PostgreSQL DSN (default $MFAKIT_POSTGRES_DSN)")
	table := flag.String("table", "mfakit_enrollments", "the enrollments table (the demo's, default prefix)")
	user := flag.String("user", "alice@example.com", "the user the token stands for")
	token := flag.String("token", "", "the bearer token to accept (required)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file, for go tool pprof")
	flag.Parse()
	if *dsn == "" || *token == "" {
		log.Fatal("dbbaseline: -db (or $MFAKIT_POSTGRES_DSN) and -token are required")
	}
	db, err := sql.Open("pgx", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	setPool(db)
	if err := db.Ping(); err != nil {
		log.Fatal(err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b := newBaseline(db, *table)
	b.tokens[*token] = *user
	srv := &http.Server{Addr: *addr, Handler: b, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("dbbaseline on http://%s/oauth/users/mfaDetails", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// setPool is the demo's setPostgresPool: as many idle connections kept as
// may be open, 8 per core, an idle one closed after 5 minutes.
func setPool(db *sql.DB) {
	n := 8 * runtime.GOMAXPROCS(0)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
}

// baseline serves GET /oauth/users/mfaDetails and nothing else.
type baseline struct {
	db    *sql.DB
	query string

	mu     sync.Mutex
	tokens map[string]string // bearer token → user
}

func newBaseline(db *sql.DB, table string) *baseline {
	return &baseline{db: db, tokens: map[string]string{},
		// The kit's query for a user's enrollments (sqlstore's Enrollments).
		query: "SELECT username, factor, id, verified, secret, key_id, last_step, created_at, verified_at, expires_at FROM " +
			table + " WHERE username = $1 ORDER BY factor"}
}

// details is the body: the factors offered, and the user's live ones.
type details struct {
	Availables []string              `json:"availables"`
	Details    map[string]factorBody `json:"details"`
}

type factorBody struct {
	Verified bool `json:"verified"`
}

func (b *baseline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth/users/mfaDetails" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	user, known := b.tokens[token]
	b.mu.Unlock()
	if !ok || !known {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	rows, err := b.db.QueryContext(r.Context(), b.query, user)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer rows.Close()
	body := details{Availables: []string{"AUTHENTICATOR", "EMAIL"}, Details: map[string]factorBody{}}
	now := time.Now().UnixMicro()
	for rows.Next() {
		var username, factor, id, keyID string
		var verified bool
		var secret []byte
		var lastStep, created, verifiedAt, expires int64
		if err := rows.Scan(&username, &factor, &id, &verified, &secret, &keyID, &lastStep, &created, &verifiedAt, &expires); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if verified || now < expires { // a pending enrollment counts until it expires
			body.Details[factor] = factorBody{Verified: verified}
		}
	}
	if err := rows.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(body); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// TestBaselineBody checks that the baseline reads the kit's table and
// answers what the demo's mfaDetails answers.
func TestBaselineBody(t *testing.T) {
	dsn := testdb.PostgresSchemaDSN(t) // skips without MFAKIT_POSTGRES_DSN
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	setPool(db)
	ctx := context.Background()
	store, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e := storage.Enrollment{User: "alice@example.com", Factor: storage.Authenticator, ID: "id", Secret: []byte("sealed"),
		KeyID: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := store.BeginEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := store.ConfirmEnrollment(ctx, e.User, e.Factor, e.ID, 1, now); err != nil {
		t.Fatal(err)
	}
	b := newBaseline(db, "mfakit_enrollments")
	b.tokens["tok"] = e.User
	srv := httptest.NewServer(b)
	defer srv.Close()
	for token, want := range map[string]struct {
		status int
		body   string
	}{
		"tok":   {200, `{"availables":["AUTHENTICATOR","EMAIL"],"details":{"AUTHENTICATOR":{"verified":true}}}` + "\n"},
		"wrong": {401, "unauthorized\n"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/oauth/users/mfaDetails", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want.status || string(body) != want.body {
			t.Errorf("token %s: %d %s, want %d %s", token, res.StatusCode, body, want.status, want.body)
		}
	}
}

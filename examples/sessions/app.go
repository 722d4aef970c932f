package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/mfakit/mfakit/mfa"              // mfakit
	"github.com/mfakit/mfakit/storage/sqlstore" // mfakit

	_ "modernc.org/sqlite"
)

// options configure the app; main fills them from the command line, tests
// directly.
type options struct {
	addr string
	// db is the SQLite file; the kit's key file sits beside it (db + ".key").
	db string
	// now is the app's and the kit's one clock. Default time.Now.
	now func() time.Time
	// bcryptCost hashes passwords. Default bcrypt.DefaultCost.
	bcryptCost int
	// out receives the kit's emails (change notices). Default io.Discard.
	out io.Writer
}

// app is the web app: users in SQLite, scs sessions, server-rendered pages.
type app struct {
	db       *sql.DB
	dbPath   string
	users    *users
	sessions *scs.SessionManager
	pages    pages
	now      func() time.Time
	out      io.Writer
	log      *slog.Logger
	handler  http.Handler
	mfa      *mfa.Service // mfakit
}

func newApp(ctx context.Context, o options) (*app, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.bcryptCost == 0 {
		o.bcryptCost = bcrypt.DefaultCost
	}
	if o.out == nil {
		o.out = io.Discard
	}
	// What concurrent writers need (a busy timeout, WAL, write transactions
	// that take the lock when they begin, which the kit's sqlstore relies
	// on) and a small pool of kept connections: SQLite has one writer.
	db, err := sqlstore.OpenSQLite(o.db) // mfakit: was sql.Open("sqlite", <that DSN, by hand>)
	if err != nil {
		return nil, err
	}
	a := &app{db: db, dbPath: o.db, sessions: newSessions(), now: o.now, out: o.out, log: slog.Default()}
	if err := a.setup(ctx, o); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) setup(ctx context.Context, o options) error {
	var err error
	if a.users, err = newUsers(a.db, o.bcryptCost, a.now); err != nil {
		return err
	}
	if err := a.users.migrate(ctx); err != nil {
		return err
	}
	if a.pages, err = parsePages(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	a.routes(mux)
	// Every route runs with the session loaded and the user, if any, in
	// the context; no other site may post to any of them (CSRF).
	a.handler = http.NewCrossOriginProtection().Handler(a.sessions.LoadAndSave(a.loadUser(mux)))
	return a.mountMFA(ctx, mux) // mfakit: was return nil
}

// Handler serves the app.
func (a *app) Handler() http.Handler { return a.handler }

// Close releases the database.
func (a *app) Close() error { return a.db.Close() }

func (a *app) routes(mux *http.ServeMux) {
	mux.Handle("GET /static/", staticFiles())
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /signup", a.signupPage)
	mux.HandleFunc("POST /signup", a.signup)
	mux.Handle("GET /account", a.requireLogin(http.HandlerFunc(a.account)))
	mux.Handle("POST /account/signout-everywhere", a.requireLogin(http.HandlerFunc(a.signOutEverywhere)))
	mux.Handle("POST /account/delete", a.requireLogin(http.HandlerFunc(a.deleteAccount)))
	mux.Handle("GET /admin", a.requireAdmin(http.HandlerFunc(a.admin)))
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	if currentUser(r.Context()) == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

type loginData struct {
	Username, Next, Error string
}

func (a *app) loginPage(w http.ResponseWriter, r *http.Request) {
	if currentUser(r.Context()) != nil {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	a.render(w, r, "login.html", loginData{Next: r.URL.Query().Get("next")})
}

// login checks the password; signIn then starts the session.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	name, next := r.PostFormValue("username"), r.PostFormValue("next")
	u, err := a.users.authenticate(r.Context(), name, r.PostFormValue("password"))
	switch {
	case errors.Is(err, errBadCredentials):
		a.renderStatus(w, r, http.StatusUnauthorized, "login.html", loginData{Username: name, Next: next, Error: err.Error()})
	case err != nil:
		a.serverError(w, r, err)
	default:
		a.passwordChecked(w, r, u.Name) // mfakit: was a.signIn(w, r, u.Name)
	}
}

// signIn starts the session of the user called name and goes on to where
// the login began.
func (a *app) signIn(w http.ResponseWriter, r *http.Request, name string) {
	u, err := a.users.byName(r.Context(), name)
	if err == nil {
		err = a.startSession(r.Context(), u)
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if err := a.sessions.Destroy(r.Context()); err != nil {
		a.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *app) signupPage(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, "signup.html", loginData{})
}

func (a *app) signup(w http.ResponseWriter, r *http.Request) {
	name := r.PostFormValue("username")
	u, err := a.users.create(r.Context(), name, r.PostFormValue("password"), false)
	if err != nil {
		a.renderStatus(w, r, http.StatusBadRequest, "signup.html", loginData{Username: name, Error: err.Error()})
		return
	}
	a.signIn(w, r, u.Name)
}

func (a *app) account(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, "account.html", nil)
}

// export answers everything the app keeps about the signed-in user, as
// JSON: sensitive (mountMFA puts it behind a step-up).
func (a *app) export(w http.ResponseWriter, r *http.Request) {
	u := currentUser(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"username": u.Name, "role": u.Role(), "exportedAt": a.now().UTC()})
}

func (a *app) signOutEverywhere(w http.ResponseWriter, r *http.Request) {
	if err := a.users.endSessions(r.Context(), currentUser(r.Context()).Name); err != nil {
		a.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// deleteAccount deletes the signed-in user after checking their password.
func (a *app) deleteAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u := currentUser(ctx)
	if _, err := a.users.authenticate(ctx, u.Name, r.PostFormValue("password")); err != nil {
		a.renderStatus(w, r, http.StatusUnauthorized, "error.html", "The password was wrong; the account was not deleted.")
		return
	}
	// The account goes first, so no new sign-in of it can start while the
	// kit forgets it.
	err := a.users.delete(ctx, u.ID)
	if err == nil { // mfakit
		err = a.mfa.ForgetUser(ctx, u.Name) // mfakit
	} // mfakit
	if err == nil {
		err = a.sessions.Destroy(ctx)
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.sessions.Put(ctx, keyFlash, "Your account has been deleted.")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *app) admin(w http.ResponseWriter, r *http.Request) {
	all, err := a.users.list(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "admin.html", all)
}

// serverError logs err and answers a page that does not show it.
func (a *app) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.logError(r.Context(), err)
	a.renderStatus(w, r, http.StatusInternalServerError, "error.html", "Something went wrong on our side.")
}

// logError logs err, if it is one.
func (a *app) logError(ctx context.Context, err error) {
	if err != nil {
		a.log.ErrorContext(ctx, "failed", "err", err)
	}
}

package main

import (
	"context"
	"database/sql"
	"encoding/gob"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Session keys.
const (
	keyUserID   = "user_id"      // int64, users.id
	keySignedIn = "signed_in_at" // time.Time, to the microsecond
	keyFlash    = "flash"        // string, shown once on the next page
)

// newSessions returns the app's session manager: scs with its in-memory
// store. Sessions end when the process does; a deployment with several
// instances would give scs a shared store (its sqlite3store, say), and
// nothing else here would change, since no code needs to list a user's
// sessions: see loadUser.
func newSessions() *scs.SessionManager {
	gob.Register(time.Time{}) // scs encodes session values with gob; signed_in_at is a time
	s := scs.New()            // its Store is scs's memstore, cleaned every minute
	s.Lifetime = 12 * time.Hour
	s.IdleTimeout = 2 * time.Hour
	s.Cookie.Name = "session"
	s.Cookie.HttpOnly = true
	s.Cookie.SameSite = http.SameSiteLaxMode
	// Served over plain HTTP on 127.0.0.1 here; behind TLS set Secure too.
	return s
}

type userKey struct{}

// currentUser returns the signed-in user of the request, or nil.
func currentUser(ctx context.Context) *user {
	u, _ := ctx.Value(userKey{}).(*user)
	return u
}

// loadUser puts the session's user in the request context. A session whose
// user is gone, or which signed in at or before the user's
// SessionsValidAfter ("sign out everywhere"), is destroyed: this is how the
// app ends all of a user's sessions without listing them.
func (a *app) loadUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := a.sessions.GetInt64(ctx, keyUserID)
		if id == 0 {
			next.ServeHTTP(w, r)
			return
		}
		u, err := a.users.byID(ctx, id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			a.serverError(w, r, err)
			return
		}
		if u == nil || !a.sessions.GetTime(ctx, keySignedIn).After(u.SessionsValidAfter) {
			if err := a.sessions.Destroy(ctx); err != nil {
				a.serverError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, userKey{}, u)))
	})
}

// startSession signs u in on a fresh session token (so a token planted
// before the sign-in is worth nothing).
func (a *app) startSession(ctx context.Context, u *user) error {
	if err := a.sessions.RenewToken(ctx); err != nil {
		return err
	}
	a.sessions.Put(ctx, keyUserID, u.ID)
	a.sessions.Put(ctx, keySignedIn, a.now().Truncate(time.Microsecond))
	return nil
}

// requireLogin sends visitors who are not signed in to the login page,
// which brings them back afterwards.
func (a *app) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if currentUser(r.Context()) == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireAdmin is requireLogin for administrators only.
func (a *app) requireAdmin(next http.Handler) http.Handler {
	return a.requireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !currentUser(r.Context()).IsAdmin {
			a.renderStatus(w, r, http.StatusForbidden, "error.html", "Only administrators may see this page.")
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// localPath returns next if it is a path on this site, else "/account":
// the login form must not redirect anywhere else.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/account"
	}
	return next
}

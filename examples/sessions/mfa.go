// This file holds the Go lines of the app that exist only because of
// mfakit. The rest of the app is as it was before two-step verification,
// but for the lines marked "mfakit" in app.go; mfakit_lines_test.go counts
// both. The kit keeps its tables in the app's SQLite file (prefix mfa_)
// and its key in <db>.key beside it; its JSON routes are under /mfa, where
// static/mfa.js calls them with the session cookie. A session notes in
// "mfa_at:<user>" when it last passed a code: at sign-in, at a
// re-verification, and when the user sets up their authenticator. The key
// names the user, so that the MFA time of an earlier sign-in on the same
// browser never counts for another user.
package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// mountMFA builds the kit on the app's database and adds its routes: the
// JSON API, the code form of a sign-in, and the step-up before the export.
// A reset of a user's MFA by an administrator ends the user's sessions
// (EndSessions), as "sign out everywhere" does.
func (a *app) mountMFA(ctx context.Context, mux *http.ServeMux) error {
	// The key and the store do not depend on each other: one check for both.
	keys, err := mfa.LoadOrCreateKeyFile(a.dbPath + ".key")
	store, storeErr := sqlstore.New(a.db, sqlstore.SQLite, sqlstore.Options{TablePrefix: "mfa_"})
	if err = errors.Join(err, storeErr); err != nil {
		return err
	}
	a.mfa, err = mfa.New(store, &mailer.Writer{W: a.out}, keys, mfa.Config{Issuer: "Sessions example", Now: a.now,
		Factors: []mfa.Factor{mfa.Authenticator}, AdminRole: "administrator",
		EndSessions: func(ctx context.Context, user string) { a.logError(ctx, a.users.endSessions(ctx, user)) }})
	if err != nil {
		return err
	}
	verified := func(_ http.ResponseWriter, r *http.Request, u httpx.User, _ mfa.Factor) {
		a.logError(r.Context(), a.sessions.RenewToken(r.Context())) // a new token for the raised privilege
		a.sessions.Put(r.Context(), "mfa_at:"+u.Username, a.now())
	}
	kit := httpx.New(a.mfa, httpx.AuthenticatorFunc(a.mfaUser), httpx.Config{OnVerified: verified})
	kit.Mount(mux, "/mfa")
	mux.Handle("POST /login/code", kit.SignIn(func(w http.ResponseWriter, r *http.Request, res mfa.LoginResult) {
		verified(w, r, httpx.User{Username: res.User}, res.Factor)
		a.signIn(w, r, res.User)
	}))
	mux.Handle("GET /account/export", a.requireLogin(kit.Auth().RequireMFA(5*time.Minute)(http.HandlerFunc(a.export))))
	return store.Migrate(ctx)
}

// mfaUser tells the kit who is signed in (loadUser found them) and when
// their session last passed a code.
func (a *app) mfaUser(r *http.Request) (httpx.User, error) {
	if u := currentUser(r.Context()); u != nil {
		return httpx.User{Username: u.Name, Email: u.Name, Roles: []string{u.Role()}, MFAAt: a.sessions.GetTime(r.Context(), "mfa_at:"+u.Name)}, nil
	}
	return httpx.User{}, httpx.ErrUnauthorized
}

// passwordChecked follows a right password: a user with an authenticator
// gets the code form, which posts to the kit's SignIn; anyone else a
// session.
func (a *app) passwordChecked(w http.ResponseWriter, r *http.Request, name string) {
	if ch, err := a.mfa.StartChallenge(r.Context(), name, ""); err != nil {
		a.serverError(w, r, err)
	} else if ch.Status == mfa.ChallengeNone {
		a.signIn(w, r, name)
	} else {
		a.render(w, r, "code.html", map[string]string{"Token": ch.Token, "Next": r.PostFormValue("next")})
	}
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mfakit/mfakit/httpx"
)

// demoUser is one entry of -users.
type demoUser struct {
	name, password string
	roles          []string
}

// parseUsers reads "name:password:ROLE[|ROLE],...".
func parseUsers(s string) (map[string]demoUser, error) {
	users := map[string]demoUser{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("-users entry %q: want name:password:ROLE[|ROLE]", entry)
		}
		users[parts[0]] = demoUser{name: parts[0], password: parts[1], roles: strings.Split(parts[2], "|")}
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("-users: no users given")
	}
	return users, nil
}

// parseClients reads "id:secret,...".
func parseClients(s string) (map[string]string, error) {
	clients := map[string]string{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, secret, ok := strings.Cut(entry, ":")
		if !ok || id == "" || secret == "" {
			return nil, fmt.Errorf("-clients entry %q: want id:secret", entry)
		}
		clients[id] = secret
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("-clients: no clients given")
	}
	return clients, nil
}

// identity is the demo's whole identity system: password users, OAuth
// clients, and opaque bearer tokens kept in memory. It is an
// httpx.TokenAuthenticator (for httpx.Bearer) and an
// httpx.ClientAuthenticator (httpx.Config.Clients). A real host plugs its
// own in instead.
type identity struct {
	users   map[string]demoUser
	clients map[string]string
	now     func() time.Time
	ttl     time.Duration

	mu     sync.Mutex
	tokens map[string]session
	// ended holds, per user, when endSessions last ran: a session whose
	// sign-in began at or before then does not count (S24).
	ended map[string]time.Time
}

type session struct {
	user    string
	since   time.Time // when the sign-in began, before its password or code was checked
	expires time.Time
	mfaAt   time.Time // when the sign-in passed MFA; zero for password only
}

func newIdentity(users map[string]demoUser, clients map[string]string) *identity {
	return &identity{users: users, clients: clients, now: time.Now, ttl: time.Hour,
		tokens: map[string]session{}, ended: map[string]time.Time{}}
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// checkPassword reports whether name's password is password.
func (id *identity) checkPassword(name, password string) bool {
	u, ok := id.users[name]
	// Compare even for unknown users, so timing does not reveal them.
	want := "\x00no-such-user"
	if ok {
		want = u.password
	}
	return equal(password, want) && ok
}

// issue mints a bearer token for user. since is when the sign-in began,
// before its password or code was checked; mfaAt is when it passed MFA
// (zero for a password-only sign-in).
func (id *identity) issue(user string, since, mfaAt time.Time) (string, time.Duration) {
	b := make([]byte, 32)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	id.mu.Lock()
	defer id.mu.Unlock()
	id.tokens[token] = session{user: user, since: since, expires: id.now().Add(id.ttl), mfaAt: mfaAt}
	return token, id.ttl
}

// endSessions ends every session of user: it is the kit's
// Config.EndSessions, called after a reset that closes every way back
// (S24). Every token issued so far stops working, and so does one still
// to be issued for a sign-in that began before now (its code was checked
// before the reset), so no session, and no MFA time for step-up, from
// before the reset counts.
func (id *identity) endSessions(_ context.Context, user string) {
	if _, ok := id.users[user]; !ok {
		return // no sign-in, no session; and an admin's typo takes no memory
	}
	id.mu.Lock()
	defer id.mu.Unlock()
	id.ended[user] = id.now()
	for token, s := range id.tokens {
		if s.user == user {
			delete(id.tokens, token)
		}
	}
}

// AuthenticateToken implements httpx.TokenAuthenticator.
func (id *identity) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	id.mu.Lock()
	s, ok := id.tokens[token]
	if ok && !id.now().Before(s.expires) {
		delete(id.tokens, token)
		ok = false
	}
	if ended, was := id.ended[s.user]; ok && was && !s.since.After(ended) {
		delete(id.tokens, token)
		ok = false
	}
	id.mu.Unlock()
	if !ok {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	u := id.users[s.user]
	hu := u.httpxUser()
	hu.MFAAt = s.mfaAt
	return hu, nil
}

func (u demoUser) httpxUser() httpx.User {
	email := ""
	if strings.Contains(u.name, "@") {
		email = u.name
	}
	return httpx.User{Username: u.name, Email: email, Roles: u.roles}
}

// email returns the address of a known user.
func (id *identity) email(name string) string {
	return id.users[name].httpxUser().Email
}

// EmailOf implements mfa.Directory: where change notices after admin
// resets go, and the code of a sign-in switched to EMAIL.
func (id *identity) EmailOf(_ context.Context, name string) (string, error) {
	return id.email(name), nil
}

// AuthenticateClient implements httpx.ClientAuthenticator.
func (id *identity) AuthenticateClient(_ context.Context, clientID, secret string) error {
	want, ok := id.clients[clientID]
	if !ok {
		want = "\x00no-such-client"
	}
	if !equal(secret, want) || !ok {
		return httpx.ErrUnauthorized
	}
	return nil
}

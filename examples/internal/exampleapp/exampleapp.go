// Package exampleapp is what the framework examples share: the kit on an
// in-memory store, a fixed-token Authorizer, and the enrollment journey
// their tests drive through each framework's router.
package exampleapp

import (
	"context"
	"os"
	"strings"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// Tokens maps the example bearer tokens to their users. A real host plugs
// its own sessions or OAuth tokens in through an httpx.Authorizer.
var Tokens = map[string]httpx.User{
	"alice-token": {Username: "alice@example.com", Email: "alice@example.com", Roles: []string{"ROLE_USER"}},
	"admin-token": {Username: "admin@example.com", Email: "admin@example.com", Roles: []string{"ROLE_ADMIN_CUSTOMER"}},
}

type authorizer struct{}

func (authorizer) AuthenticateToken(_ context.Context, token string) (httpx.User, error) {
	u, ok := Tokens[token]
	if !ok {
		return httpx.User{}, httpx.ErrUnauthorized
	}
	return u, nil
}

func (authorizer) AuthenticateClient(context.Context, string, string) error {
	return httpx.ErrUnauthorized
}

// NewAPI returns the kit's handlers on a fresh in-memory store; emails are
// printed to stdout.
func NewAPI() (*httpx.Handlers, error) {
	svc, err := mfa.New(memstore.New(), &mailer.Writer{W: os.Stdout}, mfa.NewRandomKeyring(), mfa.Config{Issuer: "mfakit example"})
	if err != nil {
		return nil, err
	}
	return httpx.New(svc, authorizer{}, httpx.Config{}), nil
}

// ColonPath turns a ServeMux pattern ("/users/{username}/...") into the
// ":name" syntax of gin, echo and fiber ("/users/:username/...").
func ColonPath(p string) string { return colonPath.Replace(p) }

var colonPath = strings.NewReplacer("{", ":", "}", "")

package main

import (
	"net/http/httptest"
	"testing"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
)

func TestEchoJourney(t *testing.T) {
	e, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	exampleapp.Journey(t, srv.URL, "/mfa")
}

// The admin reset of /users/alice%40example.com/... acts on
// alice@example.com: echo's parameter is decoded before the kit reads it.
func TestEchoEscapedUsername(t *testing.T) {
	e, err := newServer()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	exampleapp.EscapedReset(t, srv.URL, "/mfa")
}

package main

import (
	"net/http/httptest"
	"testing"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
)

func TestChiJourney(t *testing.T) {
	h, err := newRouter()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	exampleapp.Journey(t, srv.URL, "/mfa")
}

// The admin reset of /users/alice%40example.com/... acts on
// alice@example.com: chi's parameter is decoded before the kit reads it.
func TestChiEscapedUsername(t *testing.T) {
	h, err := newRouter()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	exampleapp.EscapedReset(t, srv.URL, "/mfa")
}

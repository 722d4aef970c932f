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

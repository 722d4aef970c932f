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

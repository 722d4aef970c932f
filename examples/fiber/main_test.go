package main

import (
	"net"
	"testing"

	"github.com/mfakit/mfakit/examples/internal/exampleapp"
)

func TestFiberJourney(t *testing.T) {
	app, err := newApp()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	exampleapp.Journey(t, "http://"+ln.Addr().String(), "/mfa")
}

// The admin reset of /users/alice%40example.com/... acts on
// alice@example.com: fiber's parameter is decoded before the kit reads it.
func TestFiberEscapedUsername(t *testing.T) {
	app, err := newApp()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	exampleapp.EscapedReset(t, "http://"+ln.Addr().String(), "/mfa")
}

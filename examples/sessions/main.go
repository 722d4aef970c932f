// Command sessions is a small web app of the usual Go kind — net/http's
// ServeMux, users in SQLite with bcrypt passwords, alexedwards/scs cookie
// sessions, html/template pages — to which mfakit adds two-step
// verification with an authenticator app. Every line that exists only
// because of mfakit is in mfa.go.
//
//	go run ./examples/sessions                          # from the repository root
//	go run ./examples/sessions -addr 127.0.0.1:8090 -db /tmp/sessions.db
//
// Sign in as alice@example.com / alice-password or admin@example.com /
// admin-password (created on the first start).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8090", "listen address")
	fs.StringVar(&o.db, "db", "sessions-example.db", "SQLite file of the users and the kit's tables (created if missing); the kit's key goes beside it, in <db>.key")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	o.out = os.Stdout // the kit's emails (change notices), printed
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, o)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	slog.Info("sessions example listening", "url", "http://"+ln.Addr().String(), "db", o.db)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

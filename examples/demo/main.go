// Command demo is a working server that mounts mfakit at its root, with a
// tiny in-memory identity system: password users, OAuth clients and bearer
// tokens from POST /oauth/token. Emails are printed in full to stdout.
//
//	go run ./examples/demo                  # from the repository root
//	go run ./examples/demo -addr 127.0.0.1:9000 -users 'me@example.com:pw:ROLE_USER'
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
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/mfakit/mfakit/mfa"
)

const (
	defaultUsers   = "alice@example.com:alice-password:ROLE_USER,admin@example.com:admin-password:ROLE_ADMIN_CUSTOMER"
	defaultClients = "demo-client:demo-secret"
)

// options is the demo's command line.
type options struct {
	addr, users, clients, db, keyFile string
	emailInterval                     time.Duration
	smtp, mailFrom, smtpUser          string
	smtpPassword, smtpSecurity        string
	// rpID and rpOrigins are the passkeys' relying party: its ID (a
	// domain; empty turns passkeys off) and the comma-separated origins
	// pages may use them from (empty: http://localhost:<port of addr>).
	rpID, rpOrigins string
	// cpuProfile, if set, receives a CPU profile of the whole run
	// (docs/performance.md).
	cpuProfile string
	// events receives the kit's audit events; not a flag. Default: logged
	// with slog.
	events mfa.EventHook
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&o.users, "users", defaultUsers, "demo users name:password:ROLE[|ROLE],...")
	fs.StringVar(&o.clients, "clients", defaultClients, "demo OAuth clients id:secret,...")
	fs.StringVar(&o.db, "db", "mfakit-demo.db", "storage: empty = in memory; postgres://... = PostgreSQL; redis://... = Redis; else a SQLite file")
	fs.StringVar(&o.keyFile, "key-file", "", "file holding the hex AES-256 key that seals secrets (created if missing; default: the SQLite path + .key, or mfakit-demo.key)")
	fs.StringVar(&o.smtp, "smtp", "", "SMTP server host:port; empty = print every email to stdout")
	fs.StringVar(&o.mailFrom, "mail-from", "mfakit demo <mfa@localhost>", "sender of the emails")
	fs.StringVar(&o.smtpUser, "smtp-user", "", "SMTP username (the password comes from $MFAKIT_SMTP_PASSWORD)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file, for go tool pprof")
	fs.StringVar(&o.smtpSecurity, "smtp-security", "starttls", "starttls (required, except to a loopback server), tls (implicit, port 465) or plaintext")
	fs.DurationVar(&o.emailInterval, "email-interval", time.Minute, "least time between two email codes to one user")
	fs.StringVar(&o.rpID, "rp-id", "localhost", "passkeys' relying party ID (the site's domain); empty = no passkeys")
	fs.StringVar(&o.rpOrigins, "rp-origins", "", "comma-separated origins the page may use passkeys from (default http://localhost:<port of -addr>)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.smtpPassword = os.Getenv("MFAKIT_SMTP_PASSWORD")
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

// passkeyOrigins returns the origins the page may use passkeys from:
// -rp-origins, or http://localhost:<port of -addr>; none without -rp-id.
func (o options) passkeyOrigins() ([]string, error) {
	if o.rpID == "" {
		return nil, nil
	}
	var origins []string
	for _, s := range strings.Split(o.rpOrigins, ",") {
		if s = strings.TrimSuffix(strings.TrimSpace(s), "/"); s != "" {
			origins = append(origins, s)
		}
	}
	if len(origins) > 0 {
		return origins, nil
	}
	_, port, err := net.SplitHostPort(o.addr)
	if err != nil || port == "" || port == "0" {
		return nil, fmt.Errorf("-rp-origins: cannot derive it from -addr %q (give -rp-origins http://localhost:PORT)", o.addr)
	}
	return []string{"http://localhost:" + port}, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := run(o, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(o options, out io.Writer) error {
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	o.addr = ln.Addr().String() // the port taken, for the passkeys' default origin
	app, err := newApp(o, out)
	if err != nil {
		ln.Close()
		return err
	}
	defer app.Close()
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go app.cleanup(ctx, time.Hour)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	slog.Info("mfakit demo listening", "url", "http://"+ln.Addr().String(), "storage", app.storageName)
	fmt.Fprintf(out, "mfakit demo on http://%s — get a token with:\n  curl -s -u demo-client:demo-secret -d grant_type=password -d username=alice@example.com -d password=alice-password http://%s/oauth/token\n",
		ln.Addr(), ln.Addr())
	if len(app.rpOrigins) > 0 {
		fmt.Fprintf(out, "passkeys work on the page at %s/ (not at another address of this server)\n", app.rpOrigins[0])
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package httpx_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// trackingBody records whether a handler read the request body.
type trackingBody struct {
	io.Reader
	mu   sync.Mutex
	read bool
}

func (b *trackingBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.read = true
	b.mu.Unlock()
	return b.Reader.Read(p)
}
func (b *trackingBody) Close() error { return nil }

// TestAttackMatrix (S18): every route × every kind of credential answers
// exactly 401, 403 or passes authentication, and no handler reads the body
// of a request it refuses.
func TestAttackMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.enrollQR("bob-token")
	h := e.handlers(httpx.Config{}).Handler()

	type auth int
	const (
		userAuth auth = iota
		clientOrUser
		adminAuth
		clientAuth
	)
	routes := []struct {
		method, path, body string
		auth               auth
		okStatus           int // the status with valid credentials (0: anything but 401/403)
	}{
		{"GET", detailsPath, "", userAuth, 200},
		{"PUT", qrPath, "", userAuth, 0},
		{"PUT", "/oauth" + qrPath, "", userAuth, 0},
		{"PUT", verifyPath, verifyBody("AUTHENTICATOR", "123456"), userAuth, 0},
		{"PUT", "/oauth" + verifyPath, verifyBody("AUTHENTICATOR", "123456"), userAuth, 0},
		{"POST", resetMyPath, `{"username":"bob@example.com","mfatype":"AUTHENTICATOR","totp":"123456"}`, clientOrUser, 0},
		{"POST", "/oauth" + resetMyPath, `{"username":"bob@example.com","mfatype":"AUTHENTICATOR","totp":"123456"}`, clientOrUser, 0},
		{"PUT", adminPath("bob@example.com"), "", adminAuth, 200},
		{"PUT", "/oauth" + adminPath("bob@example.com"), "", adminAuth, 200},
		{"PUT", enrollEmail, "", userAuth, 0},
		{"PUT", verifyEmail, verifyBody("EMAIL", "123456"), userAuth, 0},
		{"GET", "/oauth/users/mfa/recoveryCodes", "", userAuth, 200},
		{"POST", "/oauth/users/mfa/recoveryCodes", "", userAuth, 0},
		{"PUT", "/oauth/users/mfa/challenge?mfatype=EMAIL", `{"stateToken":"v1.x"}`, clientAuth, 0},
		{"PUT", "/oauth/users/mfa/verify", verifyBody("AUTHENTICATOR", "123456"), userAuth, 0},
	}
	creds := []struct {
		name          string
		bearer        string
		basic         [2]string
		forUser       int // status on user routes
		forAdmin      int
		forClient     int
		forClientUser int
	}{
		{"none", "", [2]string{}, 401, 401, 401, 401},
		{"bad token", "forged", [2]string{}, 401, 401, 401, 401},
		{"expired token", "expired-token", [2]string{}, 401, 401, 401, 401},
		{"wrong role", "alice-token", [2]string{}, 0, 403, 401, 0},
		{"wrong client secret", "", [2]string{"demo-client", "nope"}, 401, 401, 401, 401},
		{"unknown client", "", [2]string{"other", "demo-secret"}, 401, 401, 401, 401},
		{"valid user", "admin-token", [2]string{}, 0, 0, 401, 0},
		{"valid client", "", [2]string{"demo-client", "demo-secret"}, 401, 401, 0, 0},
	}
	for _, rt := range routes {
		for _, c := range creds {
			t.Run(rt.method+" "+rt.path+" "+c.name, func(t *testing.T) {
				want := map[auth]int{userAuth: c.forUser, adminAuth: c.forAdmin, clientAuth: c.forClient, clientOrUser: c.forClientUser}[rt.auth]
				body := &trackingBody{Reader: strings.NewReader(rt.body)}
				req := httptest.NewRequest(rt.method, rt.path, body)
				req.ContentLength = int64(len(rt.body))
				if rt.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if c.bearer != "" {
					req.Header.Set("Authorization", "Bearer "+c.bearer)
				}
				if c.basic[0] != "" {
					req.SetBasicAuth(c.basic[0], c.basic[1])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				// A step-up request (401 mfa_required, or 403
				// enrollment_required for a user without a factor) has
				// authenticated the caller.
				stepUp := rec.Code == 401 && strings.Contains(rec.Body.String(), `"code":"mfa_required"`) ||
					rec.Code == 403 && strings.Contains(rec.Body.String(), `"code":"enrollment_required"`)
				switch {
				case want != 0 && rec.Code != want:
					t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
				case want == 0 && (rec.Code == 401 || rec.Code == 403) && !stepUp:
					t.Fatalf("valid credentials refused: %d %s", rec.Code, rec.Body)
				case want == 0 && rt.okStatus != 0 && c.name == "valid user" && rec.Code != rt.okStatus:
					t.Fatalf("status %d, want %d: %s", rec.Code, rt.okStatus, rec.Body)
				}
				if (rec.Code == 401 || rec.Code == 403) && body.read {
					t.Fatal("the handler read the body of a request it refused")
				}
			})
		}
	}
}

// TestWWWAuthenticate: each refusal names the schemes its route takes,
// and a missing step-up gets the RFC 9470 challenge; a failing Authenticator
// gets none (it is not the caller's credentials that failed).
func TestWWWAuthenticate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.enrollQR("alice-token")
	const stepUp = `Bearer realm="mfakit", error="insufficient_user_authentication", ` +
		`error_description="a recent multi-factor authentication is required", max_age=600`
	client := [2]string{"demo-client", "wrong"}
	for _, c := range []struct {
		name string
		req  request
		want string
	}{
		{"user route", request{method: "GET", path: detailsPath}, `Bearer realm="mfakit"`},
		{"user route, expired token", request{method: "GET", path: detailsPath, token: "expired-token"}, `Bearer realm="mfakit"`},
		{"user route, failing Authenticator", request{method: "GET", path: detailsPath, token: "broken"}, ""},
		{"self reset, bad token", request{method: "POST", path: resetMyPath, token: "forged", body: "{}"}, `Bearer realm="mfakit"`},
		{"self reset, bad client", request{method: "POST", path: resetMyPath, basic: client, body: "{}"}, `Basic realm="mfakit", Bearer realm="mfakit"`},
		{"self reset, nothing", request{method: "POST", path: resetMyPath, body: "{}"}, `Basic realm="mfakit", Bearer realm="mfakit"`},
		{"switch, bad client", request{method: "PUT", path: "/oauth/users/mfa/challenge?mfatype=EMAIL", basic: client, body: "{}"}, `Basic realm="mfakit"`},
		{"step-up", request{method: "PUT", path: enrollEmail, token: "alice-token"}, stepUp},
		{"step-up, recovery codes", request{method: "POST", path: "/oauth/users/mfa/recoveryCodes", token: "alice-stale"}, stepUp},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.req)
			if got := r.header.Get("WWW-Authenticate"); got != c.want {
				t.Fatalf("WWW-Authenticate = %q, want %q (status %d)", got, c.want, r.status)
			}
		})
	}
	// RequireMFA on a host route.
	h := e.handlers(httpx.Config{}).Auth().RequireMFA(time.Minute)(http.NotFoundHandler())
	for token, want := range map[string]string{"": `Bearer realm="mfakit"`, "alice-stale": strings.Replace(stepUp, "600", "60", 1)} {
		req := httptest.NewRequest("GET", "/", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get("WWW-Authenticate"); got != want {
			t.Errorf("RequireMFA with %q: WWW-Authenticate = %q, want %q", token, got, want)
		}
	}
}

// TestPathTricks: dot segments, encoded slashes, unicode and overlong
// usernames in the admin path never reach another user or crash.
func TestPathTricks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.enrollQR("bob-token")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	redirect := func(code int) bool { return code == 301 || code == 307 || code == 308 }
	do := func(path string) int {
		req, _ := http.NewRequest("PUT", e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if redirect(resp.StatusCode) {
			return 301
		}
		return resp.StatusCode
	}
	for path, want := range map[string]int{
		"/users/x/../bob@example.com/mfa/resetQRCodeEnroll":                                       301, // ServeMux cleans, never acts on it
		"/users/bob@example.com/mfa/../mfa/resetQRCodeEnroll":                                     301,
		"/users/%2e%2e/mfa/resetQRCodeEnroll":                                                     200, // the literal username "..", which is nobody
		"/users/bob%40example.com%2F..%2Fx/mfa/resetQRCodeEnroll":                                 200, // one segment: username "bob@example.com/../x"
		"/users/%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC@%E4%BE%8B%E3%81%88.jp/mfa/resetQRCodeEnroll": 200,
		"/users/" + strings.Repeat("%F0%9F%98%80", 81) + "/mfa/resetQRCodeEnroll":                 400, // 324 bytes
		"/users/%FF%FE/mfa/resetQRCodeEnroll":                                                     400, // not UTF-8
		"/users//mfa/resetQRCodeEnroll":                                                           301,
	} {
		if got := do(path); got != want {
			t.Errorf("%s: %d, want %d", path, got, want)
		}
	}
	r := e.do(request{method: "GET", path: detailsPath, token: "bob-token"})
	if !strings.Contains(string(r.body), `"AUTHENTICATOR":{"verified":true}`) {
		t.Fatalf("a path trick reset bob: %s", r.body)
	}
}

// secretsOf enrolls alice through the HTTP API (authenticator and email)
// and returns what must never be stored or logged in clear.
func secretsOf(t *testing.T, e *env) (secret string, raw []byte, codes []string) {
	t.Helper()
	r := e.do(request{method: "PUT", path: qrPath, token: "alice-token", accept: "application/json"})
	expect(t, r, 200, "")
	var qr httpx.QRCodeResponse
	json.Unmarshal(r.body, &qr)
	raw, _, err := mfa.ParseKeyURI(qr.OTPAuthURL)
	if err != nil {
		t.Fatal(err)
	}
	code := e.codeFor(qr.OTPAuthURL, 0)
	expect(t, e.do(request{method: "PUT", path: verifyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", code)}), 200, "")
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-mfa"}), 200, "")
	emailCode := e.mail.LastCode("alice@example.com")
	// A second send leaves a pending, unused code in the store.
	e.advance(time.Minute)
	expect(t, e.do(request{method: "PUT", path: enrollEmail, token: "alice-mfa"}), 200, "")
	pendingCode := e.mail.LastCode("alice@example.com")
	return qr.Secret, raw, []string{emailCode, pendingCode}
}

func checkDump(t *testing.T, where string, dump []byte, secret string, raw []byte, codes []string) {
	t.Helper()
	asDecimal := func(b []byte) string { return strings.Trim(fmt.Sprint(b), "[]") }
	for _, needle := range append([]string{secret, strings.ToLower(secret), string(raw), asDecimal(raw),
		fmt.Sprintf("%x", raw)}, codes...) {
		if bytes.Contains(dump, []byte(needle)) {
			t.Fatalf("%s holds a secret or code in clear (%q)", where, needle)
		}
	}
	for _, c := range codes {
		if bytes.Contains(dump, []byte(asDecimal([]byte(c)))) {
			t.Fatalf("%s holds an email code in clear", where)
		}
	}
}

// S5, S10: after enrolling through the HTTP API no store holds the base32
// secret, the raw secret or an email code in clear.
func TestNothingInClearAtRest(t *testing.T) {
	t.Run("memstore", func(t *testing.T) {
		store := memstore.New()
		e := newEnv(t, store)
		secret, raw, codes := secretsOf(t, e)
		checkDump(t, "the memstore", []byte(fmt.Sprintf("%+v", store)), secret, raw, codes)
	})
	t.Run("SQLite file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rest.db")
		db, err := sql.Open("sqlite", testdb.SQLiteDSN(path))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		store, _ := sqlstore.New(db, sqlstore.SQLite, sqlstore.Options{})
		if err := store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, store)
		secret, raw, codes := secretsOf(t, e)
		var dump []byte
		for _, f := range []string{path, path + "-wal"} {
			b, _ := os.ReadFile(f)
			dump = append(dump, b...)
		}
		if len(dump) == 0 {
			t.Fatal("empty database file")
		}
		checkDump(t, "the SQLite file", dump, secret, raw, codes)
	})
	t.Run("PostgreSQL tables", func(t *testing.T) {
		db := testdb.Postgres(t)
		store, _ := sqlstore.New(db, sqlstore.Postgres, sqlstore.Options{TablePrefix: testdb.Unique("rest")})
		if err := store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, table := range store.Tables() {
				db.Exec("DROP TABLE IF EXISTS " + table)
			}
		})
		e := newEnv(t, store)
		secret, raw, codes := secretsOf(t, e)
		var dump []byte
		for _, table := range store.Tables() {
			rows, err := db.Query("SELECT * FROM " + table)
			if err != nil {
				t.Fatal(err)
			}
			types, _ := rows.ColumnTypes()
			for rows.Next() {
				vals := make([]any, len(types))
				for i := range vals {
					vals[i] = new([]byte)
				}
				if err := rows.Scan(vals...); err != nil {
					t.Fatal(err)
				}
				for i, v := range vals {
					if tn := types[i].DatabaseTypeName(); tn == "INT8" || tn == "INT4" {
						continue // numbers cannot hold a secret, and their digits would match codes by chance
					}
					dump = append(append(dump, *v.(*[]byte)...), '\n')
				}
			}
			rows.Close()
		}
		checkDump(t, "the PostgreSQL tables", dump, secret, raw, codes)
	})
}

// S16: no secret, code or token reaches a log line or an audit event.
func TestLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := memstore.New()
	mail := &mailertest.Recorder{}
	now := time.Now().Truncate(30 * time.Second).Add(5 * time.Second)
	e := &env{t: t, mail: mail, store: store, now: now}
	svc, err := mfa.New(store, mail, mfa.NewRandomKeyring(), mfa.Config{Now: e.clock, Logger: logger, Events: mfa.SlogEvents(logger)})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.authz = newAuthz(e.clock)
	api := e.handlers(httpx.Config{Logger: logger})
	e.srv = httptest.NewServer(api.Handler())
	defer e.srv.Close()

	secret, raw, codes := secretsOf(t, e)
	wrongEmail := "000000"
	if codes[1] == wrongEmail {
		wrongEmail = "111111"
	}
	wrong := wrongCodeAt(raw, svc.TOTP(), e.clock())
	e.do(request{method: "PUT", path: verifyEmail, token: "alice-mfa", body: verifyBody("EMAIL", wrongEmail)})
	e.do(request{method: "PUT", path: verifyEmail, token: "alice-mfa", body: verifyBody("EMAIL", codes[1])})
	r := e.do(request{method: "POST", path: "/oauth/users/mfa/recoveryCodes", token: "alice-mfa"})
	var rc httpx.RecoveryCodesResponse
	json.Unmarshal(r.body, &rc)
	ch, _ := svc.StartChallenge(context.Background(), "alice@example.com", "alice@example.com")
	svc.CompleteChallenge(context.Background(), ch.Token, mfa.Proof{Code: wrong})
	svc.CompleteChallenge(context.Background(), ch.Token, mfa.Proof{Factor: mfa.Recovery, Code: rc.RecoveryCodes[0]})
	for range 6 { // up to a lockout
		e.do(request{method: "POST", path: resetMyPath, token: "alice-token", body: verifyBody("AUTHENTICATOR", wrong)})
	}
	mu.Lock()
	out := logs.Bytes()
	mu.Unlock()
	for _, kind := range []string{"enroll_started", "enroll_verified", "failure", "lockout", "email_sent", "recovery_generated", "recovery_used"} {
		if !bytes.Contains(out, []byte(`"msg":"mfa `+kind+`"`)) {
			t.Errorf("no %s event in the log", kind)
		}
	}
	checkDump(t, "the log", out, secret, raw, append(codes, append(rc.RecoveryCodes, ch.Token, "alice-token", "alice-mfa")...))
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

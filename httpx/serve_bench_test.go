package httpx_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfakit/mfakit/httpx"
	"github.com/mfakit/mfakit/mailer"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// benchWriter is a ResponseWriter that keeps the status and discards the
// body: the serving benchmarks measure the kit's own work, not a
// recorder's.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *benchWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// rewindBody is a request body that can be read again.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// BenchmarkServe measures the hot routes of the load test (status,
// verify_ok, verify_fail) as the server runs them: the real Handler, the
// Bearer authenticator, the memory store, on requests built once and
// served again (so the figures hold the kit's allocations, not the
// request's construction). verify_ok advances the clock two periods per
// round of users, so every check accepts a new step.
func BenchmarkServe(b *testing.B) {
	const users = 4096
	var now atomic.Int64
	now.Store(time.Unix(1700000000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	svc, err := mfa.New(memstore.New(), mailer.SendFunc(func(context.Context, mailer.Message) error { return nil }),
		mfa.NewRandomKeyring(), mfa.Config{Issuer: "bench", MaxFailures: 100, Now: clock,
			Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	az := benchAuthz{}
	ctx := context.Background()
	secrets := make([][]byte, users)
	var params mfa.TOTP
	for i := range users {
		u := fmt.Sprintf("user%d@example.com", i)
		az.users = append(az.users, httpx.User{Username: u, Email: u})
		key, _ := svc.BeginAuthenticator(ctx, u)
		secret, p, _ := mfa.ParseKeyURI(key.URI)
		if err := svc.VerifyAuthenticator(ctx, u, p.Code(secret, p.Step(clock())-1)); err != nil {
			b.Fatal(err)
		}
		secrets[i], params = secret, p
	}
	h := httpx.New(svc, httpx.Bearer(az), httpx.Config{}).Handler()

	type prepared struct {
		req  *http.Request
		body *rewindBody
	}
	prepare := func(method, path string, body []byte, i int) prepared {
		rb := &rewindBody{}
		rb.Reset(body)
		req, err := http.NewRequest(method, "http://127.0.0.1:8080"+path, rb)
		if err != nil {
			b.Fatal(err)
		}
		req.RemoteAddr = "127.0.0.1:54321"
		req.RequestURI = path
		req.Header.Set("Authorization", "Bearer t"+strconv.Itoa(i))
		req.Header.Set("User-Agent", "loadtest")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
			req.ContentLength = int64(len(body))
		} else {
			req.Body = http.NoBody
		}
		return prepared{req, rb}
	}
	run := func(b *testing.B, reqs []prepared, want int, round func()) {
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(reqs) {
				i = 0
				if round != nil {
					b.StopTimer()
					round()
					b.StartTimer()
				}
			}
			p := reqs[i]
			p.body.Seek(0, io.SeekStart)
			w.reset()
			h.ServeHTTP(w, p.req)
			if w.status != want {
				b.Fatalf("request %d: status %d, want %d", i, w.status, want)
			}
			i++
		}
	}
	b.Run("status", func(b *testing.B) {
		reqs := make([]prepared, users)
		for i := range reqs {
			reqs[i] = prepare("GET", "/oauth/users/mfaDetails", nil, i)
		}
		run(b, reqs, 200, nil)
	})
	b.Run("verify_ok", func(b *testing.B) {
		reqs := make([]prepared, users)
		// Each round moves the clock two periods: a code that shows the
		// same digits as the step before (one user in a million) is then
		// taken for that step, which is still newer than the last one
		// accepted, instead of being refused as reused.
		fill := func() {
			now.Add(2 * int64(params.Period))
			step := params.Step(clock())
			for i := range reqs {
				body := []byte(`{"mfatype":"AUTHENTICATOR","totp":"` + params.Code(secrets[i], step) + `"}`)
				reqs[i] = prepare("PUT", "/oauth/users/mfa/verify", body, i)
			}
		}
		fill()
		run(b, reqs, 200, fill)
	})
	b.Run("verify_fail", func(b *testing.B) {
		reqs := make([]prepared, users)
		step := params.Step(clock())
		for i := range reqs {
			wrong := 0 // a code that none of the window's steps has
			for s := step - 1; s <= step+1; s++ {
				if params.Code(secrets[i], s) == fmt.Sprintf("%06d", wrong) {
					wrong++
					s = step - 2
				}
			}
			body := []byte(`{"mfatype":"AUTHENTICATOR","totp":"` + fmt.Sprintf("%06d", wrong) + `"}`)
			reqs[i] = prepare("PUT", "/oauth/users/mfa/verify", body, i)
		}
		run(b, reqs, 400, nil)
	})
}

// WriteString is what the server's ResponseWriter offers too.
func (w *benchWriter) WriteString(s string) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(s)
	return len(s), nil
}

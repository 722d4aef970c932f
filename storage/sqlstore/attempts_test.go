package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mfakit/mfakit/internal/testdb"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/sqlstore"
)

// policies covers the corners of storage.LockPolicy.LockFor that the SQL
// restates: saturation, Max below Base or unset, no lock (Base 0),
// MaxFailures below 1, locks below a microsecond, Max near the int64 limit.
var policies = []storage.LockPolicy{
	{MaxFailures: 3, Base: time.Minute, Max: time.Hour},
	{MaxFailures: 1, Base: time.Second, Max: 500 * time.Millisecond},
	{MaxFailures: 2, Base: 0, Max: time.Hour},
	{MaxFailures: 2, Base: time.Second},
	{MaxFailures: 0, Base: time.Millisecond, Max: time.Minute},
	{MaxFailures: -5, Base: 3 * time.Millisecond, Max: 1 << 62},
	{MaxFailures: 4, Base: 1500 * time.Microsecond, Max: 7 * time.Second},
	{MaxFailures: 1, Base: 3, Max: math.MaxInt64},
	{MaxFailures: 2, Base: 2500, Max: 9999},
}

// TestReserveModel drives random reservations, resets, and accepted steps
// with a random policy per call (so an expired lock meets a policy that
// sets none) and checks every answer and every stored state against
// storage.NextAttempt.
func TestReserveModel(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, b.open(t), b.dialect)
			rng := rand.New(rand.NewPCG(1, uint64(b.dialect)))
			users := []string{"m0", "m1", "m2"}
			model := map[string]storage.Attempts{}
			steps := map[string]int64{}
			for _, u := range users[:2] { // m2 has no enrollment
				e := storage.Enrollment{User: u, Factor: storage.Authenticator, ID: "id", KeyID: "k",
					CreatedAt: time.UnixMicro(1), ExpiresAt: time.UnixMicro(1e15)}
				if err := s.BeginEnrollment(ctx, e); err != nil {
					t.Fatal(err)
				}
				if err := s.ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 1, time.UnixMicro(2)); err != nil {
					t.Fatal(err)
				}
				steps[u] = 1
			}
			now := time.UnixMicro(1_700_000_000_000_000).UTC()
			for i := range 1500 {
				u := users[rng.IntN(len(users))]
				p := policies[rng.IntN(len(policies))]
				if cur := model[u]; rng.IntN(3) == 0 && cur.LockedUntil.After(now) {
					now = cur.LockedUntil // exactly at the end of the lock
				} else {
					now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
				}
				what := fmt.Sprintf("op %d on %s at %v with %+v", i, u, now, p)
				switch op := rng.IntN(10); {
				case op == 0:
					if err := s.ResetAttempts(ctx, u, storage.Authenticator); err != nil {
						t.Fatal(err)
					}
					delete(model, u)
				case op == 1:
					err := s.AcceptStep(ctx, u, storage.Authenticator, steps[u]+1)
					if _, ok := steps[u]; !ok {
						if !errors.Is(err, storage.ErrNotFound) {
							t.Fatalf("%s: AcceptStep = %v, want ErrNotFound", what, err)
						}
						break
					}
					if err != nil {
						t.Fatalf("%s: AcceptStep = %v", what, err)
					}
					steps[u]++
					delete(model, u)
				default:
					want, ok := storage.NextAttempt(model[u], now, p)
					var got storage.Attempts
					var err error
					if op%2 == 0 {
						got, err = s.ReserveAttempt(ctx, u, storage.Authenticator, now, p)
					} else {
						var e storage.Enrollment
						e, got, err = s.ReserveFactor(ctx, u, storage.Authenticator, now, p)
						_, enrolled := steps[u]
						switch {
						case !ok:
							if e.User != "" {
								t.Fatalf("%s: locked ReserveFactor returned an enrollment %+v", what, e)
							}
						case enrolled:
							if err != nil || e.User != u || e.LastStep != steps[u] {
								t.Fatalf("%s: ReserveFactor = %+v, %v; want the enrollment at step %d", what, e, err, steps[u])
							}
						default:
							if !errors.Is(err, storage.ErrNotFound) || e.User != "" {
								t.Fatalf("%s: ReserveFactor = %+v, %v; want ErrNotFound", what, e, err)
							}
							err = nil
						}
					}
					if ok && err != nil {
						t.Fatalf("%s: %v, want a reservation %+v", what, err, want)
					}
					if !ok && !errors.Is(err, storage.ErrLocked) {
						t.Fatalf("%s: %v, want ErrLocked", what, err)
					}
					want = inMicros(want) // what the store keeps
					if ok {
						model[u] = want
					}
					same(t, what+": returned", got, want)
				}
				stored, err := s.Attempts(ctx, u, storage.Authenticator)
				if err != nil {
					t.Fatal(err)
				}
				same(t, what+": stored", stored, model[u])
			}
		})
	}
}

func inMicros(a storage.Attempts) storage.Attempts {
	us := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return time.UnixMicro(t.UnixMicro()).UTC()
	}
	return storage.Attempts{Failures: a.Failures, LockedUntil: us(a.LockedUntil), LastAt: us(a.LastAt)}
}

func same(t *testing.T, what string, got, want storage.Attempts) {
	t.Helper()
	if got.Failures != want.Failures || !got.LockedUntil.Equal(want.LockedUntil) || !got.LastAt.Equal(want.LastAt) {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
}

// pools opens two pools on one database and a store on each with the same
// table prefix: two app instances.
func pools(t *testing.T, name string, d sqlstore.Dialect) [2]*sqlstore.Store {
	var dbs [2]*sql.DB
	switch name {
	case "SQLite":
		path := filepath.Join(t.TempDir(), "two.db")
		for i := range dbs {
			db, err := sql.Open("sqlite", testdb.SQLiteDSN(path))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			dbs[i] = db
		}
	case "Postgres":
		dbs = [2]*sql.DB{testdb.Postgres(t), testdb.Postgres(t)}
	default:
		dbs = [2]*sql.DB{testdb.MySQL(t), testdb.MySQL(t)}
	}
	first := newStore(t, dbs[0], d)
	second, err := sqlstore.New(dbs[1], d, sqlstore.Options{TablePrefix: prefixOf(first)})
	if err != nil {
		t.Fatal(err)
	}
	return [2]*sqlstore.Store{first, second}
}

func prefixOf(s *sqlstore.Store) string {
	name := s.Tables()[0]
	return name[:len(name)-len("enrollments")]
}

// TestTwoPools races two instances of one store: their reservations are
// bounded together, exactly one accepts a step, and reservations and
// accepted steps of many users interleave without a deadlock surfacing.
func TestTwoPools(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := pools(t, b.name, b.dialect)
			at := time.UnixMicro(1_700_000_000_000_000)
			enroll := func(u string) {
				e := storage.Enrollment{User: u, Factor: storage.Authenticator, ID: "id", KeyID: "k", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
				if err := st[0].BeginEnrollment(ctx, e); err != nil {
					t.Fatal(err)
				}
				if err := st[1].ConfirmEnrollment(ctx, u, storage.Authenticator, "id", 1, at); err != nil {
					t.Fatal(err)
				}
			}
			enroll("u")
			p := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
			var mu sync.Mutex
			counts := map[int]int{}
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var a storage.Attempts
					var err error
					if i%2 == 0 {
						a, err = st[i%4/2].ReserveAttempt(ctx, "u", storage.Authenticator, at, p)
					} else {
						_, a, err = st[i%4/2].ReserveFactor(ctx, "u", storage.Authenticator, at, p)
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						counts[a.Failures]++
					case errors.Is(err, storage.ErrLocked):
						if a.Failures != 5 || !a.LockedUntil.Equal(at.Add(time.Minute)) {
							t.Errorf("ErrLocked with state %+v", a)
						}
						counts[-1]++
					default:
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			for n := 1; n <= 5; n++ {
				if counts[n] != 1 {
					t.Fatalf("reservations by count: %v; want each of 1..5 once", counts)
				}
			}
			if counts[-1] != 35 {
				t.Fatalf("reservations by count: %v; want 35 refused", counts)
			}

			var accepted sync.Map
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := st[i%2].AcceptStep(ctx, "u", storage.Authenticator, 2); err == nil {
						accepted.Store(i, true)
					} else if !errors.Is(err, storage.ErrStepReused) {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			n := 0
			accepted.Range(func(any, any) bool { n++; return true })
			if n != 1 {
				t.Fatalf("%d of 20 AcceptStep calls succeeded, want 1", n)
			}
			if a, err := st[1].Attempts(ctx, "u", storage.Authenticator); err != nil || a != (storage.Attempts{}) {
				t.Fatalf("failure state after the accepted step: %+v, %v", a, err)
			}

			// The verify hot path of many users on both instances at once.
			users := make([]string, 8)
			for i := range users {
				users[i] = fmt.Sprintf("hot%d", i)
				enroll(users[i])
			}
			open := storage.LockPolicy{MaxFailures: 1 << 30, Base: time.Minute, Max: time.Hour}
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 7))
					for i := range 40 {
						s, u := st[w%2], users[rng.IntN(len(users))]
						if _, _, err := s.ReserveFactor(ctx, u, storage.Authenticator, at, open); err != nil {
							t.Error(err)
							return
						}
						err := s.AcceptStep(ctx, u, storage.Authenticator, int64(2+w*100+i))
						if err != nil && !errors.Is(err, storage.ErrStepReused) {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestReserveBehindLock reserves while another transaction holds an
// uncommitted insert of a locked state: the reservation waits for it, and
// once it commits answers ErrLocked with that state. On PostgreSQL this is
// the case where the statement's snapshot predates the lock that stopped
// its upsert, and the reservation must run again to read it.
func TestReserveBehindLock(t *testing.T) {
	for _, b := range backends {
		for _, method := range []string{"ReserveAttempt", "ReserveFactor"} {
			t.Run(b.name+"/"+method, func(t *testing.T) {
				ctx := context.Background()
				db := b.open(t)
				s := newStore(t, db, b.dialect)
				now := time.UnixMicro(1_700_000_000_000_000).UTC()
				want := storage.Attempts{Failures: 3, LockedUntil: now.Add(time.Hour), LastAt: now.Add(-time.Second)}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				insert := "INSERT INTO " + s.Tables()[2] + " (username, factor, failures, locked_until, last_at) VALUES (?, ?, ?, ?, ?)"
				if b.dialect == sqlstore.Postgres {
					insert = "INSERT INTO " + s.Tables()[2] + " (username, factor, failures, locked_until, last_at) VALUES ($1, $2, $3, $4, $5)"
				}
				if _, err := tx.ExecContext(ctx, insert, "u", "AUTHENTICATOR", 3, want.LockedUntil.UnixMicro(), want.LastAt.UnixMicro()); err != nil {
					t.Fatal(err)
				}
				type result struct {
					a   storage.Attempts
					err error
				}
				done := make(chan result)
				go func() {
					p := storage.LockPolicy{MaxFailures: 5, Base: time.Minute, Max: time.Hour}
					var r result
					if method == "ReserveAttempt" {
						r.a, r.err = s.ReserveAttempt(ctx, "u", storage.Authenticator, now, p)
					} else {
						_, r.a, r.err = s.ReserveFactor(ctx, "u", storage.Authenticator, now, p)
					}
					done <- r
				}()
				select {
				case r := <-done:
					t.Fatalf("the reservation did not wait for the uncommitted row: %+v, %v", r.a, r.err)
				case <-time.After(300 * time.Millisecond):
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				r := <-done
				if !errors.Is(r.err, storage.ErrLocked) {
					t.Fatalf("%s behind a lock = %+v, %v; want ErrLocked", method, r.a, r.err)
				}
				same(t, method+" behind a lock", r.a, want)
			})
		}
	}
}

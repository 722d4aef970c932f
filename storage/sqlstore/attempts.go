package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// lockParams is a storage.LockPolicy as the SQL of a reservation takes
// it. The SQL restates LockFor without a loop: the lock of the n-th
// reservation is limit once k = n-min reaches cap, else base << k, which
// is then below limit, so no statement ever shifts or adds past int64.
type lockParams struct {
	min   int64 // the count that first locks; math.MaxInt64 if none does
	base  int64 // ns
	limit int64 // ns: max(Base, Max)
	cap   int64 // the doublings after which the lock is limit (at most 63)
}

func newLockParams(p storage.LockPolicy) lockParams {
	if p.Base <= 0 {
		return lockParams{min: math.MaxInt64} // never locks
	}
	// A count below 1 locks from the first reservation; below -64 every
	// lock it sets is saturated already, so clamping changes nothing.
	lp := lockParams{min: max(int64(p.MaxFailures), -64), base: int64(p.Base), limit: int64(max(p.Base, p.Max))}
	for d := lp.base; d < lp.limit; d *= 2 {
		lp.cap++
		if d > lp.limit/2 {
			break
		}
	}
	return lp
}

// locks reports whether the n-th reservation sets a lock.
func (lp lockParams) locks(n int64) bool { return n >= lp.min }

// lockFor is storage.LockPolicy.LockFor(n) in whole microseconds, as the
// SQL computes it (for n that locks).
func (lp lockParams) lockFor(n int64) int64 {
	if k := n - lp.min; k < lp.cap {
		return lp.base << k / 1000
	}
	return lp.limit / 1000
}

// firstLock is the lockout end that a first reservation at now sets, or 0.
func (lp lockParams) firstLock(now int64) int64 {
	if lp.locks(1) {
		return now + lp.lockFor(1)
	}
	return 0
}

// reservation is what one reserving statement tells.
type reservation struct {
	a        storage.Attempts
	reserved bool // the check was reserved; else the factor was locked
	known    bool // a is the state the statement left; else read it
}

// maxRaces bounds the retries of a reservation that found the factor
// locked and then, reading the state, found it unlocked (a concurrent
// reset between the two reads).
const maxRaces = 8

// Attempts implements storage.AttemptStore. A row of zeroes, as
// AcceptStep leaves on PostgreSQL and MySQL, is no state: the zero value.
func (s *Store) Attempts(ctx context.Context, user string, factor storage.Factor) (storage.Attempts, error) {
	var failures int
	var locked, last int64
	err := s.queryRow(ctx, "SELECT failures, locked_until, last_at FROM "+s.attempts+
		" WHERE username = ? AND factor = ?", user, string(factor)).Scan(&failures, &locked, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Attempts{}, nil
	}
	if err != nil {
		return storage.Attempts{}, wrap("attempts", err)
	}
	return attempts(failures, locked, last), nil
}

func attempts(failures int, locked, last int64) storage.Attempts {
	return storage.Attempts{Failures: failures, LockedUntil: fromMicros(locked), LastAt: fromMicros(last)}
}

// ReserveAttempt implements storage.AttemptStore with one conditional
// upsert that applies storage.NextAttempt in SQL:
//
//   - PostgreSQL: INSERT ... ON CONFLICT DO UPDATE ... WHERE unlocked
//     RETURNING, in the batched statement of ReserveFactor (pgbatch.go);
//     one round trip. A locked factor costs a second, to read its state.
//   - SQLite: the same upsert with RETURNING, then the SELECT of
//     ReserveFactor, in the batch's write transaction (litebatch.go),
//     which thus also reads the stored state of a locked factor.
//   - MySQL: INSERT ... ON DUPLICATE KEY UPDATE with IF()s, which passes
//     the new count and whether the factor was locked out through
//     LAST_INSERT_ID(expr), in the OK packet: one round trip. A locked
//     factor costs a second, to read its state, and so does the rare
//     reservation that sets no lock while an expired one is on record
//     (after a policy change), to read that lock's end.
func (s *Store) ReserveAttempt(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Attempts, error) {
	lp := newLockParams(p)
	for range maxRaces {
		r, cur, err := s.reserveOnce(ctx, user, factor, micros(now), lp)
		if err != nil {
			return storage.Attempts{}, err
		}
		if !r.known {
			var again bool
			if r, again = settle(r, cur, micros(now)); again {
				continue
			}
		}
		if !r.reserved {
			return r.a, storage.ErrLocked
		}
		return r.a, nil
	}
	return storage.Attempts{}, wrap("reserve attempt", errContention)
}

// reserveOnce makes ReserveAttempt's reservation once. A reservation
// whose state is not known comes back with the stored state (cur): on
// PostgreSQL and SQLite through reserveFactorOnce, on MySQL read after
// the upsert.
func (s *Store) reserveOnce(ctx context.Context, user string, factor storage.Factor, now int64, lp lockParams) (r reservation, cur storage.Attempts, err error) {
	if s.dialect != MySQL {
		o, err := s.reserveFactorOnce(ctx, user, factor, now, lp)
		return o.r, o.cur, err
	}
	if r, err = s.reserveMySQL(ctx, user, factor, now, lp); err != nil || r.known {
		return r, cur, err
	}
	cur, err = s.Attempts(ctx, user, factor)
	return r, cur, err
}

// settle completes a reservation whose statement left the state unknown
// with cur, the state read after it. again reports a lockout that had
// ended (or was reset) by the time of the read: the reservation must be
// tried again.
func settle(r reservation, cur storage.Attempts, now int64) (_ reservation, again bool) {
	if !r.reserved {
		// Still locked: the state returned is one the lockout stored.
		if micros(cur.LockedUntil) <= now {
			return r, true
		}
		r.a = cur
		return r, false
	}
	// Reserved without a new lock while an expired one is on record
	// (the policy changed): the count is known, the old lockout end is
	// read. Should another client have changed the row meanwhile, its
	// lockout end is taken only if it lies in the past, like ours did.
	if micros(cur.LockedUntil) <= now {
		r.a.LockedUntil = cur.LockedUntil
	}
	return r, false
}

// The SQLite upsert. Its SET clause reads the row as it was: failures + 1
// is the new count n, and from n = min on the lock it sets ends at now +
// lockParams.lockFor(n).
func (s *Store) reserveSQLite(ctx context.Context, row rowQuerier, user string, factor storage.Factor, now int64, lp lockParams) (reservation, error) {
	var failures int
	var locked, last int64
	err := row(ctx, s.liteReserveQuery,
		user, string(factor), lp.firstLock(now), now, lp.min, lp.min, lp.cap, lp.limit, lp.base, lp.min).Scan(&failures, &locked, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return reservation{}, nil // locked: nothing changed
	}
	if err != nil {
		return reservation{}, wrap("reserve attempt", err)
	}
	return reservation{a: attempts(failures, locked, last), reserved: true, known: true}, nil
}

// Flags of the LAST_INSERT_ID value of the MySQL upsert; the low 40 bits
// are the count.
const (
	myLocked = 1 << 41 // the factor was locked: nothing changed
	myKept   = 1 << 40 // reserved; no new lock, an expired one is kept
	myCount  = 1<<40 - 1
)

// The MySQL upsert. ON DUPLICATE KEY UPDATE assigns left to right, each
// expression seeing the columns assigned before it: the failures and
// last_at assignments read the old locked_until (and failures the old
// count); the locked_until assignment reads the new count n and, not yet
// assigned, the old locked_until. LAST_INSERT_ID(1) in VALUES answers a
// fresh insert; on a duplicate key the LAST_INSERT_ID(expr) of the UPDATE
// runs after it and wins. The OK packet carries that value as its insert
// id: the count in the low bits, and myLocked or myKept. Masking it
// leaves the count to store.
func (s *Store) reserveMySQL(ctx context.Context, user string, factor storage.Factor, now int64, lp lockParams) (reservation, error) {
	for attempt := 0; ; attempt++ {
		res, err := s.execResult(ctx, "reserve attempt", "INSERT INTO "+s.attempts+
			" (username, factor, failures, locked_until, last_at) VALUES (?, ?, LAST_INSERT_ID(1), ?, ?)"+
			" ON DUPLICATE KEY UPDATE"+
			" failures = LAST_INSERT_ID(IF(locked_until > ?, failures + (1 << 41),"+
			" failures + 1 + IF(locked_until <> 0 AND failures + 1 < ?, 1 << 40, 0))) & 0xFFFFFFFFFF,"+
			" last_at = IF(locked_until > ?, last_at, ?),"+
			" locked_until = IF(locked_until > ?, locked_until, IF(failures >= ?,"+
			" ? + (IF(failures - ? >= ?, ?, ? << (failures - ?)) DIV 1000), locked_until))",
			user, string(factor), lp.firstLock(now), now,
			now, lp.min,
			now, now,
			now, lp.min, now, lp.min, lp.cap, lp.limit, lp.base, lp.min)
		if deadlocked(err) && attempt < 3 && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return reservation{}, err
		}
		code, err := res.LastInsertId()
		if err != nil {
			return reservation{}, wrap("reserve attempt", err)
		}
		if code&myLocked != 0 {
			return reservation{}, nil
		}
		n := code & myCount
		r := reservation{reserved: true, known: code&myKept == 0,
			a: storage.Attempts{Failures: int(n), LastAt: fromMicros(now)}}
		if lp.locks(n) {
			r.a.LockedUntil = fromMicros(now + lp.lockFor(n))
		}
		return r, nil
	}
}

// ReserveFactor implements storage.ReservingReader. The work never
// depends on whether the enrollment exists:
//
//   - PostgreSQL: one statement (batched, see pgbatch.go): the upsert of
//     ReserveAttempt in a CTE, left-joined with the enrollment. One round
//     trip; a locked factor costs a second, to read its state.
//   - MySQL: the upsert of ReserveAttempt, then one SELECT of the state
//     and the enrollment together (a LEFT JOIN of both from a one-row
//     table). Two round trips, locked or not.
//   - SQLite: the same two statements for each call of a batch, in one
//     write transaction (litebatch.go).
func (s *Store) ReserveFactor(ctx context.Context, user string, factor storage.Factor, now time.Time, p storage.LockPolicy) (storage.Enrollment, storage.Attempts, error) {
	lp := newLockParams(p)
	for range maxRaces {
		o, err := s.reserveFactorOnce(ctx, user, factor, micros(now), lp)
		if err != nil {
			return storage.Enrollment{}, storage.Attempts{}, err
		}
		if !o.r.known {
			var again bool
			if o.r, again = settle(o.r, o.cur, micros(now)); again {
				continue
			}
		}
		switch {
		case !o.r.reserved:
			return storage.Enrollment{}, o.r.a, storage.ErrLocked
		case !o.found:
			return storage.Enrollment{}, o.r.a, storage.ErrNotFound
		}
		return o.e, o.r.a, nil
	}
	return storage.Enrollment{}, storage.Attempts{}, wrap("reserve factor", errContention)
}

// reserveFactorOnce makes ReserveFactor's reservation once: batched on
// PostgreSQL and SQLite, else reserveRead. A call whose state is not
// known comes back with the stored state in cur: SQLite's batch and
// reserveRead read it anyway; PostgreSQL's batch returns no row for a
// locked factor (reserveSQL), so its state is read here.
func (s *Store) reserveFactorOnce(ctx context.Context, user string, factor storage.Factor, now int64, lp lockParams) (reserveOut, error) {
	if s.reserves == nil {
		return s.reserveRead(ctx, s.queryRow, user, factor, now, lp)
	}
	o, err := s.reserves.do(ctx, reserveIn{user: user, factor: factor, now: now, lp: lp})
	if err == nil && !o.r.known && s.dialect == Postgres {
		o.cur, err = s.Attempts(ctx, user, factor)
	}
	return o, err
}

// reserveRead is ReserveFactor's work on MySQL and, in a batch's
// transaction, SQLite: the upsert, then the state and the enrollment in
// one SELECT, through row.
func (s *Store) reserveRead(ctx context.Context, row rowQuerier, user string, factor storage.Factor, now int64, lp lockParams) (reserveOut, error) {
	var r reservation
	var err error
	if s.dialect == MySQL {
		r, err = s.reserveMySQL(ctx, user, factor, now, lp)
	} else {
		r, err = s.reserveSQLite(ctx, row, user, factor, now, lp)
	}
	if err != nil {
		return reserveOut{}, err
	}
	o := reserveOut{r: r}
	o.e, o.cur, o.found, err = scanFactor(row(ctx, s.factorQuery,
		user, string(factor), user, string(factor)))
	if err != nil {
		return reserveOut{}, wrap("reserve factor", err)
	}
	return o, nil
}

// scanFactor reads the columns in lead, then a failure state (failures,
// locked_until, last_at), then optEnrollmentCols.
func scanFactor(row scanner, lead ...any) (e storage.Enrollment, a storage.Attempts, found bool, err error) {
	var failures int
	var locked, last int64
	e, err = scanEnrollment(row, append(lead, &failures, &locked, &last), &found)
	if err != nil {
		return storage.Enrollment{}, storage.Attempts{}, false, err
	}
	if !found {
		e = storage.Enrollment{}
	}
	return e, attempts(failures, locked, last), found, nil
}

// ResetAttempts implements storage.AttemptStore.
func (s *Store) ResetAttempts(ctx context.Context, user string, factor storage.Factor) error {
	_, err := s.exec(ctx, "reset attempts", "DELETE FROM "+s.attempts+" WHERE username = ? AND factor = ?",
		user, string(factor))
	return err
}

// liteReserveSQL is the SQLite upsert of reserveSQLite.
func liteReserveSQL(attempts string) string {
	return "INSERT INTO " + attempts + " (username, factor, failures, locked_until, last_at)" +
		" VALUES (?, ?, 1, ?, ?) ON CONFLICT (username, factor) DO UPDATE SET failures = failures + 1," +
		" locked_until = CASE WHEN failures + 1 >= ? THEN excluded.last_at +" +
		" (CASE WHEN failures + 1 - ? >= ? THEN ? ELSE ? << (failures + 1 - ?) END) / 1000" +
		" ELSE locked_until END, last_at = excluded.last_at" +
		" WHERE locked_until <= excluded.last_at RETURNING failures, locked_until, last_at"
}

// factorSQL is reserveRead's SELECT of a factor's failure state and
// enrollment (a LEFT JOIN of both from a one-row table).
func factorSQL(enrollments, attempts string) string {
	return "SELECT COALESCE(a.failures, 0), COALESCE(a.locked_until, 0)," +
		" COALESCE(a.last_at, 0), " + optEnrollmentCols + " FROM (SELECT 1 AS one) o" +
		" LEFT JOIN " + attempts + " a ON a.username = ? AND a.factor = ?" +
		" LEFT JOIN " + enrollments + " e ON e.username = ? AND e.factor = ?"
}

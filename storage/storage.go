// Package storage defines the persistence contract of mfakit: the Store
// interface a backend implements, the records it keeps and the sentinel
// errors it returns.
//
// A Store holds only what the kit needs to enforce its security rules:
// enrollments (with the TOTP secret already sealed by the caller), one-time
// email codes (as keyed hashes, never in clear), failure counters for
// lockout, and send reservations for email throttling. It never sees a
// plaintext secret or code.
//
// Every backend must pass storagetest.Run, the one conformance suite that
// pins the contracts written on each method below.
package storage

import (
	"context"
	"errors"
	"time"
)

// Factor names a second factor. The values are the exact strings of the
// mfatype field of the HTTP API.
type Factor string

// The factors mfakit knows.
const (
	// Authenticator is a TOTP authenticator app enrolled by QR code.
	Authenticator Factor = "AUTHENTICATOR"
	// Email is a one-time code sent by email.
	Email Factor = "EMAIL"
	// Recovery names the recovery codes in proofs, events and failure
	// counts. It is not enrolled like the others (Enrollable reports
	// false): a user holds a set of recovery codes (RecoveryStore).
	Recovery Factor = "RECOVERY"
)

// Enrollable reports whether f is a factor a user enrolls, like
// AUTHENTICATOR and EMAIL: false for Recovery and for unknown names.
func (f Factor) Enrollable() bool { return f == Authenticator || f == Email }

// Sentinel errors returned by every Store. Callers test them with errors.Is;
// a backend may wrap them with detail.
var (
	// ErrNotFound: the record asked for does not exist (or, where the method
	// says so, exists but no longer applies).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyVerified: a verified enrollment exists and the call would
	// replace or re-verify it.
	ErrAlreadyVerified = errors.New("storage: factor already verified")
	// ErrStepReused: the TOTP time step is not above the last accepted one.
	ErrStepReused = errors.New("storage: time step already used")
	// ErrExpired: the record exists but its expiry has passed at the given time.
	ErrExpired = errors.New("storage: expired")
	// ErrCodeMismatch: a one-time code exists but the hash given does not match.
	ErrCodeMismatch = errors.New("storage: code does not match")
	// ErrLocked: ReserveAttempt or ReserveFactor found the factor locked
	// and reserved nothing.
	ErrLocked = errors.New("storage: locked")
)

// Enrollment is one user's enrollment of one factor, pending or verified.
type Enrollment struct {
	// User is the host's username. Any UTF-8 string up to MaxUserLen bytes.
	User string
	// Factor is the enrolled factor.
	Factor Factor
	// ID is a random identifier given to each enrollment attempt, so that a
	// verification binds to the exact secret the user was shown.
	ID string
	// Verified is false while the enrollment is pending.
	Verified bool
	// Secret is the sealed (encrypted) TOTP secret; nil for EMAIL. Stores keep
	// it as opaque bytes, at most MaxSecretLen long.
	Secret []byte
	// KeyID names the key that sealed Secret.
	KeyID string
	// LastStep is the highest TOTP time step accepted for this enrollment;
	// 0 before any.
	LastStep int64
	// CreatedAt is when the enrollment began.
	CreatedAt time.Time
	// VerifiedAt is when it was verified; zero while pending.
	VerifiedAt time.Time
	// ExpiresAt is when a pending enrollment lapses; zero once verified.
	ExpiresAt time.Time
}

// Code is a one-time code waiting to be used, kept only as a keyed hash.
type Code struct {
	// User the code was issued to.
	User string
	// Purpose separates independent codes of one user, e.g. "enroll-email".
	Purpose string
	// Hash is the keyed hash of the code (at most MaxHashLen bytes).
	Hash []byte
	// ExpiresAt is when the code stops being accepted.
	ExpiresAt time.Time
}

// Attempts is the failure state of one user's factor.
type Attempts struct {
	// Failures counts the checks reserved since the last success: every
	// check counts as a failure from the moment it is reserved until a
	// success clears the state (see ReserveAttempt).
	Failures int
	// LockedUntil is the end of the current lockout; zero when none.
	LockedUntil time.Time
	// LastAt is when the last check was reserved; zero when none.
	LastAt time.Time
}

// AttemptIdle is how long failure state must be unused, and unlocked,
// before a Store may forget it (S27): storage grows with real users, not
// with names an attacker types. Forgetting it is the same as a success.
const AttemptIdle = 24 * time.Hour

// SendLimit describes the email throttle passed to ReserveSend.
type SendLimit struct {
	// MinGap is the least time between two sends.
	MinGap time.Duration
	// Window and Max cap the number of sends in a fixed window.
	Window time.Duration
	Max    int
}

// Size limits every Store must accept values up to (and may refuse beyond).
const (
	MaxUserLen    = 320 // an email address at its longest
	MaxSecretLen  = 256
	MaxHashLen    = 64
	MaxPurposeLen = 64
	MaxSendKeyLen = MaxUserLen + MaxPurposeLen // ReserveSend keys
)

// EnrollmentStore keeps enrollments, at most one per (user, factor).
type EnrollmentStore interface {
	// Enrollments returns every enrollment of user, pending ones included and
	// whatever their expiry, ordered by factor name. A user with none gets an
	// empty (possibly nil) slice and a nil error.
	Enrollments(ctx context.Context, user string) ([]Enrollment, error)

	// Enrollment returns the enrollment of (user, factor), or ErrNotFound.
	Enrollment(ctx context.Context, user string, factor Factor) (Enrollment, error)

	// BeginEnrollment stores e as a pending enrollment, replacing an earlier
	// pending one of the same (user, factor). It returns ErrAlreadyVerified and
	// changes nothing if a verified enrollment exists. Atomic: two concurrent
	// calls leave exactly one of them stored, never a verified record replaced.
	BeginEnrollment(ctx context.Context, e Enrollment) error

	// ConfirmEnrollment marks the pending enrollment of (user, factor) whose ID
	// is id as verified at now, with LastStep = step and ExpiresAt cleared.
	// It returns ErrAlreadyVerified if the enrollment is already verified,
	// ErrExpired if it lapsed before now, and ErrNotFound if there is no
	// enrollment or its ID differs. Atomic: of concurrent calls at most one
	// succeeds.
	ConfirmEnrollment(ctx context.Context, user string, factor Factor, id string, step int64, now time.Time) error

	// AcceptStep records step as used for the verified enrollment of
	// (user, factor) if and only if step > LastStep, and then sets LastStep to
	// step and clears the failure state of (user, factor) as ResetAttempts
	// does: an accepted code is the success that ends the count. Otherwise
	// it returns ErrStepReused and changes nothing. It returns ErrNotFound
	// (changing nothing) if there is no verified enrollment. Atomic across
	// every client of the same backing store: of concurrent calls with the
	// same step exactly one succeeds, and the step and the cleared state
	// are written together.
	AcceptStep(ctx context.Context, user string, factor Factor, step int64) error

	// DeleteEnrollment removes the enrollment of (user, factor), pending or
	// verified, and reports whether one existed. Deleting a missing one is a
	// no-op with a nil error.
	DeleteEnrollment(ctx context.Context, user string, factor Factor) (bool, error)
}

// CodeStore keeps one-time codes, at most one per (user, purpose).
type CodeStore interface {
	// PutCode stores c, replacing any earlier code of the same (user,
	// purpose), so a resend invalidates the code sent before.
	PutCode(ctx context.Context, c Code) error

	// ConsumeCode checks hash against the code of (user, purpose) at now.
	// On a match it deletes the code and returns nil. It returns ErrNotFound
	// if there is none, ErrExpired (and deletes it) if it lapsed, and
	// ErrCodeMismatch (keeping it) if the hash differs. Atomic: of concurrent
	// calls with the matching hash exactly one returns nil.
	ConsumeCode(ctx context.Context, user, purpose string, hash []byte, now time.Time) error

	// DeleteCode removes the code of (user, purpose); a no-op if missing.
	DeleteCode(ctx context.Context, user, purpose string) error
}

// AttemptStore bounds guesses (lockout) and throttles sends.
//
// A code check is reserved before the code is compared, never recorded
// after: the reservation counts as a failure until a success clears it, so
// that of any number of concurrent checks at most MaxFailures are ever
// compared (S22). A rule that spans several calls is not atomic; that is
// why the count, the lock test and the lock are one call.
type AttemptStore interface {
	// Attempts returns the failure state of (user, factor); the zero value
	// and a nil error when nothing was recorded (or it was forgotten, see
	// AttemptIdle).
	Attempts(ctx context.Context, user string, factor Factor) (Attempts, error)

	// ReserveAttempt reserves one code check of (user, factor) at now under
	// policy p, as NextAttempt describes: while the factor is locked it
	// changes nothing and returns the stored state with ErrLocked;
	// otherwise it adds one to Failures, sets LastAt, sets LockedUntil once
	// the count reaches p.MaxFailures, and returns the new state. Atomic
	// across every client of the same backing store: of n concurrent calls
	// on an unlocked factor with no failures, exactly min(n, MaxFailures)
	// succeed. The count is never lost: a call that returned nil has been
	// stored durably, as far as the backend is durable; or, in a Store
	// that implements Syncer, it is durable once a later Sync returns nil
	// (see Syncer).
	ReserveAttempt(ctx context.Context, user string, factor Factor, now time.Time, p LockPolicy) (Attempts, error)

	// ResetAttempts clears the failure count and lockout of (user, factor);
	// a no-op when nothing was recorded.
	ResetAttempts(ctx context.Context, user string, factor Factor) error

	// ReserveSend records one send for key at now if limit allows it and
	// returns 0. If the last send was less than limit.MinGap ago, or the
	// current window already holds limit.Max sends, it records nothing and
	// returns how long until a send would be allowed (> 0). A window starts at
	// the first send after the previous window ended. Atomic: concurrent calls
	// never reserve more than the limit allows.
	ReserveSend(ctx context.Context, key string, now time.Time, limit SendLimit) (time.Duration, error)
}

// Store is everything mfakit persists. Implementations must be safe for
// concurrent use, and every method must honour ctx cancellation by
// returning an error (never a false success).
//
// A Store may forget a pending enrollment or a code once it has been expired
// for a while (an hour or more), and failure state that is unlocked and has
// been idle for AttemptIdle (judged by the times the caller passed):
// from then on it answers as if the record never existed (ErrNotFound, or
// zero Attempts). Stores whose records do not vanish by themselves offer
// the Cleaner interface.
//
// What a Store must do is what the security rules rest on: replay
// protection (AcceptStep), single-use codes (ConsumeCode), bounded guesses
// (ReserveAttempt), throttled sends (ReserveSend), recovery codes
// (RecoveryStore) and erasure (Eraser). The optional interfaces below
// (ReservingReader, Syncer, Resealer, SendReleaser, Cleaner) only save
// round trips or tidy up; the kit works without each of them.
type Store interface {
	EnrollmentStore
	CodeStore
	AttemptStore
	RecoveryStore
	Eraser
}

// Eraser forgets a user, for account deletion (erasure): without it a new
// account that reuses a deleted one's name would inherit its enrollments.
// It is part of every Store.
type Eraser interface {
	// ForgetUser removes every record the Store keeps for user: each
	// enrollment (pending or verified), each one-time code whatever its
	// purpose, the failure state of every factor (Recovery included) and
	// the recovery code set; and the send-throttle state of each key in
	// sendKeys. Send keys are opaque to the Store, so the caller names the
	// ones it uses for user (nil for none). Records of other users and
	// other keys are untouched. Idempotent: forgetting a user the Store
	// does not know, or forgetting twice, is a no-op with a nil error.
	//
	// After a nil return every read answers as for a user never seen:
	// Enrollments empty, Enrollment, ConsumeCode and UseRecoveryCode
	// ErrNotFound, Attempts zero, RecoveryCodesLeft 0, and ReserveSend of
	// a key in sendKeys judged as that key's first send.
	//
	// It is not a lock on the user: a write for user that lands after it
	// (a concurrent BeginEnrollment, PutCode, ReserveAttempt or
	// ReserveSend still in flight) survives. Callers stop the user's
	// requests first (the host disables the account, so no sign-in starts)
	// and may call it again. Backends remove the records in one
	// transaction or script where they can, so a concurrent reader sees
	// the user either whole or gone; each backend documents what a reader
	// may see otherwise. An error may leave part of the records removed;
	// calling again finishes the job.
	ForgetUser(ctx context.Context, user string, sendKeys []string) error
}

// RecoveryStore keeps each user's recovery codes as a set of keyed hashes.
// It is part of every Store: a reset must be able to remove them (S24).
type RecoveryStore interface {
	// ReplaceRecoveryCodes makes hashes the user's whole set, dropping any
	// earlier set (S12: regenerating invalidates the old codes). Atomic:
	// a concurrent UseRecoveryCode sees the old set or the new, never a mix.
	// An empty hashes removes the set.
	ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error

	// UseRecoveryCode removes hash from the user's set and returns nil if it
	// was there, or ErrNotFound. Atomic: of concurrent calls with one hash
	// exactly one returns nil.
	UseRecoveryCode(ctx context.Context, user string, hash []byte) error

	// RecoveryCodesLeft returns how many codes remain in the user's set
	// (0 when there is none).
	RecoveryCodesLeft(ctx context.Context, user string) (int, error)
}

// Resealer is an optional Store capability used after a key rotation: the
// domain re-encrypts a secret it opened with an old key under the current
// one. All backends of this module implement it.
type Resealer interface {
	// ResealSecret sets Secret and KeyID of the enrollment of (user,
	// factor) if its ID is id and its KeyID is oldKeyID, and returns
	// ErrNotFound (changing nothing) otherwise, so a concurrent reset or
	// re-enrollment is never overwritten. Atomic.
	ResealSecret(ctx context.Context, user string, factor Factor, id, oldKeyID string, secret []byte, keyID string) error
}

// SendReleaser is an optional Store capability: taking back a send
// reservation whose email could not be delivered, so the failure does not
// hold the user's next request back. All backends of this module
// implement it.
type SendReleaser interface {
	// ReleaseSend undoes the reservation ReserveSend made for key at the
	// instant at: if the last send recorded is at, the window count drops
	// by one and the last-send time is cleared. Otherwise (a later send was
	// reserved meanwhile, or nothing is recorded) it is a no-op. Atomic.
	ReleaseSend(ctx context.Context, key string, at time.Time) error
}

// ReservingReader is an optional Store capability for the verify hot
// path: reserving a check and reading the enrollment it is for in one
// round trip, with the same work whether or not the enrollment exists
// (S26). Without it the kit calls ReserveAttempt, then Enrollment. All
// backends of this module implement it.
type ReservingReader interface {
	// ReserveFactor does what ReserveAttempt(ctx, user, factor, now, p)
	// does and, unless that returned ErrLocked, reads the enrollment of
	// (user, factor). It returns the enrollment, the state after the
	// reservation and nil; or the state, ErrLocked and a zero Enrollment
	// (nothing reserved); or a zero Enrollment, the state after the
	// reservation and ErrNotFound when there is no enrollment (the check
	// is still reserved).
	ReserveFactor(ctx context.Context, user string, factor Factor, now time.Time, p LockPolicy) (Enrollment, Attempts, error)
}

// Syncer is implemented by a Store whose reservations (ReserveAttempt,
// ReserveFactor) may return before they are durable, so that a check that
// succeeds waits for one durable write, its own (AcceptStep, ConsumeCode,
// UseRecoveryCode, ...), instead of two.
//
// The caller's part: before it answers a check that did not succeed (a
// wrong code, a replay, an unknown factor) it calls Sync, and answers
// only if Sync returned nil (else it reports an internal error, never
// the failure). A check that succeeds ends in a write that changed a
// record; when that write returns nil, the reservation before it is
// durable too. So no answer is given for a check whose count could still
// be lost.
//
// The Store's part: Sync makes every reservation that returned before
// the call durable, as far as the backend is durable; and every other
// write (not a reservation) that changes a record and returns nil makes
// durable the reservations that returned before it began. A reservation that was never made
// durable may be lost in a crash of the backend: its caller answered
// nothing (or an internal error).
type Syncer interface {
	Sync(ctx context.Context) error
}

// Cleaner is implemented by Stores whose expired records stay until removed.
// Hosts call DeleteExpired on a schedule (say, hourly).
type Cleaner interface {
	// DeleteExpired removes pending enrollments and codes that expired
	// before cutoff, send-throttle state whose last send is SendIdle older
	// than cutoff, and failure state whose last reservation is AttemptIdle
	// older than cutoff and whose lock ended before cutoff, and returns how
	// many records it removed. Verified enrollments, recovery codes and
	// failure state that is locked or recent are never removed.
	DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error)
}

// SendIdle is how long send-throttle state must be idle before a Cleaner
// may drop it: longer than any throttle window.
const SendIdle = 24 * time.Hour

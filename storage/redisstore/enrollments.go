package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
)

// enrolled are the factors a user enrolls, ordered by name.
var enrolled = [...]storage.Factor{storage.Authenticator, storage.Email}

// keyLen is an upper bound on the length of a key of user whose kind and
// name are at most 2 and nameLen bytes long.
func (s *Store) keyLen(user string, nameLen int) int {
	return len(s.prefix) + b64.EncodedLen(len(user)) + 6 + nameLen
}

// enrollmentFields are the hash fields of an enrollment, in the order
// decodeEnrollment reads them, boxed once.
var enrollmentFields = [...]any{"id", "v", "s", "k", "l", "c", "va", "x"}

// hmgetArgs are the arguments of the HMGETs of readEnrollments: the
// interfaces hold pointers into keys, which cost no allocation to box.
type hmgetArgs struct {
	args [len(enrolled)][2 + len(enrollmentFields)]any
	keys [len(enrolled)]string
}

// readEnrollments reads the enrollments of user of factors fs into es,
// by one HMGET each, all in one round trip (one pipeline), and returns
// how many there were.
func (s *Store) readEnrollments(ctx context.Context, user string, fs []storage.Factor, es []storage.Enrollment) (int, error) {
	var a args
	a.b.Grow(len(fs) * s.keyLen(user, len(storage.Authenticator)))
	for _, f := range fs {
		a.key(s.prefix, user, "e", string(f))
	}
	all := a.b.String()
	h := new(hmgetArgs)
	var cmds [len(enrolled)]*redis.StringSliceCmd
	for i := range fs {
		h.keys[i] = all[a.start(i):a.ends[i]]
		h.args[i][0], h.args[i][1] = "hmget", &h.keys[i]
		copy(h.args[i][2:], enrollmentFields[:])
		cmds[i] = redis.NewStringSliceCmd(ctx, h.args[i][:]...)
		cmds[i].SetFirstKeyPos(1)
	}
	var err error
	if len(fs) == 1 {
		err = s.process(ctx, cmds[0])
	} else if err = ctx.Err(); err == nil {
		pipe := s.hot.Pipeline()
		for _, c := range cmds[:len(fs)] {
			_ = pipe.Process(ctx, c)
		}
		_, err = pipe.Exec(ctx)
	}
	if err != nil {
		return 0, wrap("enrollments", err)
	}
	n := 0
	for i, f := range fs {
		e, err := decodeEnrollment(user, f, cmds[i].Val())
		if err == nil {
			es[n] = e
			n++
		}
	}
	return n, nil
}

// decodeEnrollment reads the values of enrollmentFields (empty where
// missing); ErrNotFound when there is no enrollment. Every enrollment
// has a verified flag v, "0" or "1".
func decodeEnrollment(user string, f storage.Factor, vals []string) (storage.Enrollment, error) {
	if len(vals) < len(enrollmentFields) || vals[0] == "" && vals[1] == "" {
		return storage.Enrollment{}, storage.ErrNotFound
	}
	e := storage.Enrollment{User: user, Factor: f, ID: vals[0], Verified: vals[1] == "1", KeyID: vals[3],
		LastStep: parseNum(vals[4]), CreatedAt: fromMicros(parseNum(vals[5])),
		VerifiedAt: fromMicros(parseNum(vals[6])), ExpiresAt: fromMicros(parseNum(vals[7]))}
	if vals[2] != "" {
		e.Secret = []byte(vals[2])
	}
	return e, nil
}

// Enrollments implements storage.EnrollmentStore in one round trip.
func (s *Store) Enrollments(ctx context.Context, user string) ([]storage.Enrollment, error) {
	var es [len(enrolled)]storage.Enrollment
	n, err := s.readEnrollments(ctx, user, enrolled[:], es[:])
	if err != nil || n == 0 {
		return nil, err
	}
	return append([]storage.Enrollment(nil), es[:n]...), nil
}

// Enrollment implements storage.EnrollmentStore.
func (s *Store) Enrollment(ctx context.Context, user string, factor storage.Factor) (storage.Enrollment, error) {
	var es [1]storage.Enrollment
	fs := [1]storage.Factor{factor}
	n, err := s.readEnrollments(ctx, user, fs[:], es[:])
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	return es[0], err
}

// BeginEnrollment implements storage.EnrollmentStore in one script.
func (s *Store) BeginEnrollment(ctx context.Context, e storage.Enrollment) error {
	res, err := beginScript.Run(ctx, s.rdb, []string{s.enrollmentKey(e.User, e.Factor)},
		e.ID, e.Secret, e.KeyID, micros(e.CreatedAt), micros(e.ExpiresAt), s.ttl(e.ExpiresAt).Milliseconds()).Result()
	return outcome("begin enrollment", res, err)
}

// ConfirmEnrollment implements storage.EnrollmentStore in one script.
func (s *Store) ConfirmEnrollment(ctx context.Context, user string, factor storage.Factor, id string, step int64, now time.Time) error {
	res, err := confirmScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, id, step, micros(now),
		rand.Text()).Result()
	return outcome("confirm enrollment", res, err)
}

// AcceptStep implements storage.EnrollmentStore in one script, which also
// clears the failure state of (user, factor) on success.
func (s *Store) AcceptStep(ctx context.Context, user string, factor storage.Factor, step int64) error {
	return s.acceptStep(ctx, user, factor, step, "")
}

// acceptStep runs acceptScript under request id rq (a fresh one if
// empty).
func (s *Store) acceptStep(ctx context.Context, user string, factor storage.Factor, step int64, rq string) error {
	var a args
	a.b.Grow(2*s.keyLen(user, len(factor)) + 20 + max(len(rq), maxRequestID))
	a.key(s.prefix, user, "e", string(factor))
	a.key(s.prefix, user, "a", string(factor))
	a.int(step)
	if rq == "" {
		a.requestID()
		a.end()
	} else {
		a.str(rq)
	}
	res, err := s.runInt(ctx, acceptScript, &a)
	switch {
	case err != nil:
		return wrap("accept step", err)
	case res == 0:
		return nil
	case res == 1:
		return storage.ErrNotFound
	case res == 2:
		return storage.ErrStepReused
	}
	return wrap("accept step", fmt.Errorf("unexpected script reply %d", res))
}

// DeleteEnrollment implements storage.EnrollmentStore.
func (s *Store) DeleteEnrollment(ctx context.Context, user string, factor storage.Factor) (bool, error) {
	n, err := s.rdb.Del(ctx, s.enrollmentKey(user, factor)).Result()
	if err != nil {
		return false, wrap("delete enrollment", err)
	}
	return n > 0, nil
}

// ResealSecret implements storage.Resealer in one script.
func (s *Store) ResealSecret(ctx context.Context, user string, factor storage.Factor, id, oldKeyID string, secret []byte, keyID string) error {
	res, err := resealScript.Run(ctx, s.rdb, []string{s.enrollmentKey(user, factor)}, id, oldKeyID, secret, keyID).Result()
	return outcome("reseal secret", res, err)
}

package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
)

// WebAuthn credentials.
//
// A user's credentials live in one hash of the user's slot
// (credentialsKey), so listing, using and deleting them is one command or
// script. Credential IDs must be unique across users (S32), and no slot
// holds every user, so each ID is also claimed in a key of its own slot
// (claimKey), whose value names the owner and a generation: a random
// value minted by each AddCredential, also stored with the credential.
// The claim and the credential cannot change in one step on a Cluster;
// the protocol keeps this invariant instead: a credential of user U with
// ID X is stored only while the claim of X names U. Every failure leaves
// the ID claimed rather than free, so it can block an ID but never lets
// two users hold one.
//
// AddCredential first claims X (claimScript: refused if the claim names
// another user, otherwise set to a new generation), then adds the
// credential under that generation (addCredentialScript). If the user
// holds X already it answers ErrCredentialExists and puts the claim's
// earlier generation back. If the second step fails (the connection broke,
// the context ended), it releases the claim: releaseCredentialScript
// either finds that the credential landed (the call then succeeds) or
// fences the generation in the user's fence hash, so that a late add
// under it is refused, and only then is the claim deleted.
//
// DeleteCredential and ForgetUser remove credentials and fence their
// generations in the same script, then delete each claim that still holds
// a fenced generation (swapClaimScript, compare-and-delete), and let the
// fence hash expire a minute later. Between the two steps the ID stays
// claimed: another user's AddCredential of it gets ErrCredentialExists. If
// the second step fails, the claims stay with the fences (which then do
// not expire) and the next DeleteCredential or ForgetUser of the user
// frees them. A claim that the user named in it holds no credential for
// (what a failed release leaves behind) blocks the ID for other users
// only; that user may add it again, and DeleteCredential of it frees it.
//
// Credentials never expire.

// releaseTimeout bounds the steps that undo a claim after an
// AddCredential failed: they run even when the caller's context ended.
const releaseTimeout = 5 * time.Second

// fenceTTL is how long the fence hash lives after its claims were freed:
// longer than the client resends a script whose reply was lost.
const fenceTTL = time.Minute

// credentialsKey names the hash of the user's credentials (see scripts.go
// for its fields).
func (s *Store) credentialsKey(user string) string { return s.userKey(user, "wa", "h") }

// fenceKey names the hash of the user's fenced claim generations (each
// mapped to its credential ID).
func (s *Store) fenceKey(user string) string { return s.userKey(user, "wf", "h") }

// claimKey names the claim of credential ID id, in a slot of its own.
func (s *Store) claimKey(id []byte) string {
	return s.prefix + "wc:{" + b64.EncodeToString(id) + "}"
}

// owner is how a claim names user: a prefix of the claim's value, followed
// by the generation.
func owner(user string) string { return b64.EncodeToString([]byte(user)) + ":" }

// AddCredential implements storage.CredentialStore. It claims the ID, then
// adds the credential, two steps on a Cluster (see above); concurrent
// calls with one ID cannot both pass the claim for different users, nor
// both add it for one user.
func (s *Store) AddCredential(ctx context.Context, c storage.Credential) error {
	if err := ctx.Err(); err != nil {
		return wrap("add credential", err)
	}
	gen := rand.Text()
	own := owner(c.User)
	claim := s.claimKey(c.ID)
	res, err := claimScript.Run(ctx, s.rdb, []string{claim}, own, own+gen).Result()
	if err == nil && res == "EXISTS" {
		return storage.ErrCredentialExists
	}
	if err == nil && res != "OK" {
		err = fmt.Errorf("unexpected script reply %v", res)
	}
	if err == nil {
		var vals []any
		vals, err = addCredentialScript.Run(ctx, s.rdb, []string{s.credentialsKey(c.User), s.fenceKey(c.User)},
			c.ID, gen, c.Name, c.Data, c.SignCount, micros(c.CreatedAt), micros(c.LastUsedAt)).Slice()
		switch {
		case err != nil: // released below
		case str(vals, 0) == "OK":
			return nil
		case str(vals, 0) == "EXISTS" && len(vals) == 2:
			// The user holds the ID under an earlier generation: put
			// it back (unless a concurrent call changed the claim).
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
			defer cancel()
			swapClaimScript.Run(rctx, s.rdb, []string{claim}, own+gen, own+str(vals, 1))
			return storage.ErrCredentialExists
		case str(vals, 0) == "FENCED":
			err = errors.New("a concurrent DeleteCredential released the claim")
		default:
			err = fmt.Errorf("unexpected script reply %v", vals)
		}
	}
	// The claim may be set, and the credential added or not (a reply
	// lost): find out, and release the claim if it was not.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	landed, rerr := s.release(rctx, c.User, c.ID, gen)
	if rerr == nil && landed {
		return nil
	}
	return wrap("add credential", errors.Join(err, rerr))
}

// release undoes the claim of id for user under generation gen, whose
// credential may or may not have been added: it reports true if it was
// (and leaves the claim). Otherwise it fences gen, then deletes the claim
// if it still holds gen, or puts back the generation the user holds id
// under.
func (s *Store) release(ctx context.Context, user string, id []byte, gen string) (bool, error) {
	g, err := releaseCredentialScript.Run(ctx, s.rdb, []string{s.credentialsKey(user), s.fenceKey(user)}, id, gen).Text()
	switch {
	case err != nil:
		return false, err
	case g == gen:
		return true, nil
	case g != "":
		own := owner(user)
		return false, swapClaimScript.Run(ctx, s.rdb, []string{s.claimKey(id)}, own+gen, own+g).Err()
	}
	return false, s.freeClaims(ctx, user)
}

// freeClaims deletes the claims of the user's fenced generations that
// still hold them, then sets the fence hash to expire after fenceTTL.
func (s *Store) freeClaims(ctx context.Context, user string) error {
	fence := s.fenceKey(user)
	fenced, err := s.rdb.HGetAll(ctx, fence).Result()
	if err != nil || len(fenced) == 0 {
		return err
	}
	own := owner(user)
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for gen, id := range fenced {
			// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT.
			swapClaimScript.Eval(ctx, p, []string{s.claimKey([]byte(id))}, own+gen, "")
		}
		return nil
	})
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	return s.rdb.PExpire(ctx, fence, fenceTTL).Err()
}

// Credentials implements storage.CredentialStore with one HGETALL.
func (s *Store) Credentials(ctx context.Context, user string) ([]storage.Credential, error) {
	fields, err := s.rdb.HGetAll(ctx, s.credentialsKey(user)).Result()
	if err != nil {
		return nil, wrap("credentials", err)
	}
	byID := map[string]*storage.Credential{}
	get := func(id string) *storage.Credential {
		c := byID[id]
		if c == nil {
			c = &storage.Credential{User: user, ID: []byte(id)}
			byID[id] = c
		}
		return c
	}
	present := map[string]bool{}
	for f, v := range fields {
		if f == "" {
			continue
		}
		id := f[1:]
		switch f[0] {
		case 'g':
			present[id] = true
		case 'n':
			get(id).Name = v
		case 'd':
			get(id).Data = []byte(v)
		case 's':
			n, _ := strconv.ParseUint(v, 10, 32)
			get(id).SignCount = uint32(n)
		case 'c':
			n, _ := strconv.ParseInt(v, 10, 64)
			get(id).CreatedAt = fromMicros(n)
		case 'u':
			n, _ := strconv.ParseInt(v, 10, 64)
			get(id).LastUsedAt = fromMicros(n)
		}
	}
	out := make([]storage.Credential, 0, len(present))
	for id := range present {
		out = append(out, *get(id))
	}
	slices.SortFunc(out, func(a, b storage.Credential) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
	return out, nil
}

// UseCredential implements storage.CredentialStore in one script.
func (s *Store) UseCredential(ctx context.Context, user string, id []byte, signCount uint32, data []byte, at time.Time) error {
	res, err := useCredentialScript.Run(ctx, s.rdb, []string{s.credentialsKey(user)},
		id, signCount, data, micros(at), rand.Text()).Result()
	if err == nil && res == "SIGNCOUNT" {
		return storage.ErrSignCount
	}
	return outcome("use credential", res, err)
}

// DeleteCredential implements storage.CredentialStore: one script removes
// the credential (and fences its generation), then its claim is freed.
// If the user holds no credential id but the claim of id names the user
// (left by a failed AddCredential), it frees that claim.
func (s *Store) DeleteCredential(ctx context.Context, user string, id []byte) (bool, error) {
	g, err := deleteCredentialScript.Run(ctx, s.rdb, []string{s.credentialsKey(user), s.fenceKey(user)}, id).Text()
	if err != nil {
		return false, wrap("delete credential", err)
	}
	if g != "" {
		if err := s.freeClaims(ctx, user); err != nil {
			return true, wrap("delete credential: free the id", err)
		}
		return true, nil
	}
	v, err := s.rdb.Get(ctx, s.claimKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, wrap("delete credential", err)
	}
	if gen, ok := strings.CutPrefix(v, owner(user)); ok {
		if _, err := s.release(ctx, user, id, gen); err != nil {
			return false, wrap("delete credential: free the id", err)
		}
	}
	return false, nil
}

package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/mfakit/mfakit/storage"
)

var _ storage.Eraser = (*Store)(nil)

// forgetFactors are the factors whose enrollment and failure state
// ForgetUser removes: every factor this module defines.
var forgetFactors = []storage.Factor{storage.Authenticator, storage.Email, storage.Recovery}

// maxForgetRaces bounds how often ForgetUser starts again because a code
// of a new purpose was stored while it ran.
const maxForgetRaces = 8

// ForgetUser implements storage.Eraser. It reads the user's code index
// (see codeIndexKey), then one script deletes the user's enrollments,
// failure state, recovery codes and WebAuthn credentials, every code the
// index lists and the index itself, unless the index changed in between
// (then it reads it again). So a reader sees the user's records all there
// or all gone. The claims of the credentials' IDs, and the send-throttle
// state of sendKeys, are deleted afterwards: their keys live in other
// Cluster slots than the user's. Until then another user cannot add those
// IDs yet (see credentials.go); if that step fails, calling ForgetUser
// again finishes it.
//
// Enrollments and failure state are removed for the factors this module
// defines (AUTHENTICATOR, EMAIL, RECOVERY); Redis cannot list a user's
// keys without a SCAN. Three kinds of record stay until their TTL ends:
// the minute-long markers by which a script answers a resent request,
// codes stored by a version of this package without the code index
// (their expiry plus Options.Grace), and the fence hash that holds the
// credential IDs until their claims are freed (a minute after).
func (s *Store) ForgetUser(ctx context.Context, user string, sendKeys []string) error {
	if err := s.forgetRecords(ctx, user); err != nil {
		return wrap("forget user", err)
	}
	if err := s.freeClaims(ctx, user); err != nil {
		return wrap("forget user: free credential ids", err)
	}
	if len(sendKeys) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range sendKeys {
			p.Del(ctx, s.sendKey(k))
		}
		return nil
	})
	if err != nil {
		return wrap("forget user: send state", err)
	}
	return nil
}

// forgetRecords deletes every key of user that ForgetUser removes, in
// forgetScript.
func (s *Store) forgetRecords(ctx context.Context, user string) error {
	index := s.codeIndexKey(user)
	for range maxForgetRaces {
		members, err := s.rdb.SMembers(ctx, index).Result()
		if err != nil {
			return err
		}
		keys := make([]string, 0, 4+2*len(forgetFactors)+len(members))
		keys = append(keys, index, s.credentialsKey(user), s.fenceKey(user), s.recoveryKey(user))
		for _, f := range forgetFactors {
			keys = append(keys, s.enrollmentKey(user, f), s.attemptsKey(user, f))
		}
		args := make([]any, len(members))
		for i, m := range members {
			keys = append(keys, s.userKey(user, "c", m))
			args[i] = m
		}
		res, err := forgetScript.Run(ctx, s.rdb, keys, args...).Result()
		if err != nil {
			return err
		}
		switch res {
		case "OK":
			return nil
		case "RETRY": // a code of a new purpose was stored meanwhile
			continue
		}
		return fmt.Errorf("unexpected script reply %v", res)
	}
	return errors.New("the user's codes kept changing")
}

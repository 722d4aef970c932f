package mfa

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"

	"github.com/mfakit/mfakit/storage"
)

const purposeRecovery = "recovery"

// recoveryAlphabet is Crockford's base32: no I, L, O or U to misread.
const recoveryAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// recoveryLen characters of 5 bits each: 80 bits per code (S12 asks ≥ 64).
const recoveryLen = 16

// GenerateRecoveryCodes makes a fresh set of Config.RecoveryCodes codes
// for a user who holds a verified factor, replacing (and so invalidating)
// any earlier set (S12). The codes are returned once, grouped for reading
// ("7KQ2-XM4D-9TPA-0WRC"); only their keyed hashes are stored.
func (s *Service) GenerateRecoveryCodes(ctx context.Context, user string) ([]string, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	if held, err := s.holdsAny(ctx, user); err != nil {
		return nil, s.internal(ctx, "recovery codes", err)
	} else if !held {
		return nil, ErrNotEnrolled
	}
	codes := make([]string, s.cfg.RecoveryCodes)
	hashes := make([][]byte, len(codes))
	for i := range codes {
		raw := make([]byte, recoveryLen)
		rand.Read(raw)
		for j := range raw {
			raw[j] = recoveryAlphabet[raw[j]&31]
		}
		codes[i] = string(raw[0:4]) + "-" + string(raw[4:8]) + "-" + string(raw[8:12]) + "-" + string(raw[12:16])
		hashes[i] = s.keys.codeHash(user, purposeRecovery, string(raw))
	}
	if err := s.store.ReplaceRecoveryCodes(ctx, user, hashes); err != nil {
		return nil, s.internal(ctx, "store recovery codes", err)
	}
	if err := s.store.ResetAttempts(ctx, user, Recovery); err != nil {
		return nil, s.internal(ctx, "store recovery codes", err)
	}
	// A reset that removed the last factor while the set was written
	// would not see it: look again, and take the set back (S24).
	if held, err := s.holdsAny(ctx, user); err != nil {
		return nil, s.internal(ctx, "recovery codes", err)
	} else if !held {
		if err := s.RevokeRecoveryCodes(ctx, user); err != nil {
			return nil, err
		}
		return nil, ErrNotEnrolled
	}
	s.emit(ctx, EventRecoveryGenerated, user, Recovery, "")
	return codes, nil
}

// RevokeRecoveryCodes removes the user's recovery codes, e.g. a set the
// HTTP layer made for a caller whose session ended while it was made.
func (s *Service) RevokeRecoveryCodes(ctx context.Context, user string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if err := s.store.ReplaceRecoveryCodes(ctx, user, nil); err != nil {
		return s.internal(ctx, "revoke recovery codes", err)
	}
	return nil
}

// RecoveryCodesLeft reports how many unused recovery codes the user has.
func (s *Service) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	if err := checkUser(user); err != nil {
		return 0, err
	}
	n, err := s.store.RecoveryCodesLeft(ctx, user)
	if err != nil {
		return 0, s.internal(ctx, "recovery codes left", err)
	}
	return n, nil
}

// UseRecoveryCode spends one of the user's recovery codes (single use,
// S12). Dashes, spaces and case do not matter, and the look-alikes O, I
// and L read as 0, 1 and 1. The check is counted before the code is
// compared (S8, S22). A code made before a key rotation still works (S25).
func (s *Service) UseRecoveryCode(ctx context.Context, user, code string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	a, err := s.reserve(ctx, user, Recovery)
	if err != nil {
		return err
	}
	code = normalizeRecovery(code)
	err = storage.ErrNotFound
	for i := 0; i < s.keys.hashKeys() && errors.Is(err, storage.ErrNotFound); i++ {
		err = s.store.UseRecoveryCode(ctx, user, s.keys.codeHashWith(i, user, purposeRecovery, code))
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return s.failed(ctx, user, Recovery, a, ErrInvalidCode)
	case err != nil:
		return s.internal(ctx, "use recovery code", err)
	}
	s.succeeded(ctx, user, Recovery, EventRecoveryUsed, false)
	return nil
}

func normalizeRecovery(code string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(code) {
		switch {
		case r == '-' || r == ' ':
		case r == 'O':
			b.WriteByte('0')
		case r == 'I' || r == 'L':
			b.WriteByte('1')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

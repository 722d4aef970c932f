package memstore

import (
	"context"

	"github.com/mfakit/mfakit/storage"
)

// ReplaceRecoveryCodes implements storage.RecoveryStore.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if len(hashes) == 0 {
		delete(sh.recovery, user)
		return nil
	}
	set := make(map[string]struct{}, len(hashes))
	for _, h := range hashes {
		set[string(h)] = struct{}{}
	}
	sh.recovery[user] = set
	return nil
}

// UseRecoveryCode implements storage.RecoveryStore.
func (s *Store) UseRecoveryCode(ctx context.Context, user string, hash []byte) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	set := sh.recovery[user]
	if _, ok := set[string(hash)]; !ok {
		return storage.ErrNotFound
	}
	delete(set, string(hash))
	return nil
}

// RecoveryCodesLeft implements storage.RecoveryStore.
func (s *Store) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return 0, err
	}
	defer sh.mu.Unlock()
	return len(sh.recovery[user]), nil
}

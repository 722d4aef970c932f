package memstore

import (
	"bytes"
	"context"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// PutCode implements storage.CodeStore.
func (s *Store) PutCode(ctx context.Context, c storage.Code) error {
	sh, err := s.lock(ctx, c.User)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	c.Hash = bytes.Clone(c.Hash)
	sh.codes[codeKey{c.User, c.Purpose}] = c
	return nil
}

// ConsumeCode implements storage.CodeStore.
func (s *Store) ConsumeCode(ctx context.Context, user, purpose string, hash []byte, now time.Time) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	k := codeKey{user, purpose}
	c, ok := sh.codes[k]
	switch {
	case !ok:
		return storage.ErrNotFound
	case !now.Before(c.ExpiresAt):
		delete(sh.codes, k)
		return storage.ErrExpired
	case !bytes.Equal(c.Hash, hash):
		return storage.ErrCodeMismatch
	}
	delete(sh.codes, k)
	return nil
}

// DeleteCode implements storage.CodeStore.
func (s *Store) DeleteCode(ctx context.Context, user, purpose string) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	delete(sh.codes, codeKey{user, purpose})
	return nil
}

package memstore

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/mfakit/mfakit/storage"
)

var _ storage.CredentialStore = (*Store)(nil)

// credentialIDs is the index of every credential ID in the store, by
// which AddCredential keeps IDs unique across users (S32). Its lock is
// taken after the user's shard lock, never before, and held only for a
// map operation.
type credentialIDs struct {
	mu    sync.Mutex
	owner map[string]string // credential ID → user
}

func cloneCredential(c storage.Credential) storage.Credential {
	c.ID, c.Data = bytes.Clone(c.ID), bytes.Clone(c.Data)
	return c
}

// AddCredential implements storage.CredentialStore. It holds the user's
// shard and the ID index together, so of concurrent calls with one ID
// exactly one succeeds.
func (s *Store) AddCredential(ctx context.Context, c storage.Credential) error {
	sh, err := s.lock(ctx, c.User)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	s.credIDs.mu.Lock()
	defer s.credIDs.mu.Unlock()
	id := string(c.ID)
	if _, ok := s.credIDs.owner[id]; ok {
		return storage.ErrCredentialExists
	}
	s.credIDs.owner[id] = c.User
	sh.credentials[c.User] = append(sh.credentials[c.User], cloneCredential(c))
	return nil
}

// Credentials implements storage.CredentialStore.
func (s *Store) Credentials(ctx context.Context, user string) ([]storage.Credential, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return nil, err
	}
	defer sh.mu.Unlock()
	cs := sh.credentials[user]
	out := make([]storage.Credential, len(cs))
	for i, c := range cs {
		out[i] = cloneCredential(c)
	}
	slices.SortFunc(out, func(a, b storage.Credential) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
	return out, nil
}

// UseCredential implements storage.CredentialStore.
func (s *Store) UseCredential(ctx context.Context, user string, id []byte, signCount uint32, data []byte, at time.Time) error {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	cs := sh.credentials[user]
	i := slices.IndexFunc(cs, func(c storage.Credential) bool { return bytes.Equal(c.ID, id) })
	if i < 0 {
		return storage.ErrNotFound
	}
	c := &cs[i]
	if signCount <= c.SignCount && (signCount != 0 || c.SignCount != 0) {
		return storage.ErrSignCount
	}
	c.SignCount, c.Data, c.LastUsedAt = signCount, bytes.Clone(data), at
	return nil
}

// DeleteCredential implements storage.CredentialStore.
func (s *Store) DeleteCredential(ctx context.Context, user string, id []byte) (bool, error) {
	sh, err := s.lock(ctx, user)
	if err != nil {
		return false, err
	}
	defer sh.mu.Unlock()
	cs := sh.credentials[user]
	i := slices.IndexFunc(cs, func(c storage.Credential) bool { return bytes.Equal(c.ID, id) })
	if i < 0 {
		return false, nil
	}
	s.credIDs.mu.Lock()
	delete(s.credIDs.owner, string(id))
	s.credIDs.mu.Unlock()
	if len(cs) == 1 {
		delete(sh.credentials, user)
	} else {
		sh.credentials[user] = slices.Delete(cs, i, i+1)
	}
	return true, nil
}

// forgetCredentials removes the credentials of user and frees their
// IDs. The caller holds the lock of the user's shard sh.
func (s *Store) forgetCredentials(sh *shard, user string) {
	cs := sh.credentials[user]
	if len(cs) == 0 {
		return
	}
	s.credIDs.mu.Lock()
	for _, c := range cs {
		delete(s.credIDs.owner, string(c.ID))
	}
	s.credIDs.mu.Unlock()
	delete(sh.credentials, user)
}

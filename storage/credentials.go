package storage

import (
	"context"
	"errors"
	"time"
)

// WebAuthn names passkeys and security keys (WebAuthn credentials). A user
// may hold several; each is a Credential.
const WebAuthn Factor = "WEBAUTHN"

// Errors of a CredentialStore.
var (
	// ErrCredentialExists: a credential with that ID is stored already,
	// for this user or another (S32: IDs are unique across users).
	ErrCredentialExists = errors.New("storage: credential id already registered")
	// ErrSignCount: the sign count given does not advance the stored one
	// (a possible clone, S32).
	ErrSignCount = errors.New("storage: signature counter did not increase")
)

// Size limits of credentials every CredentialStore must accept.
const (
	MaxCredentialIDLen   = 1023 // the WebAuthn limit for a credential ID
	MaxCredentialNameLen = 64
	MaxCredentialDataLen = 16 << 10
)

// Credential is one WebAuthn credential of a user.
type Credential struct {
	// User owns the credential.
	User string
	// ID is the credential ID the authenticator chose (raw bytes).
	ID []byte
	// Name labels the credential for the user ("Phone", "YubiKey").
	Name string
	// Data is what the domain needs to verify assertions (public key,
	// AAGUID, flags, transports), opaque to the Store.
	Data []byte
	// SignCount is the authenticator's signature counter as last seen.
	SignCount uint32
	// CreatedAt is when it was registered; LastUsedAt when it last
	// signed in (zero before).
	CreatedAt, LastUsedAt time.Time
}

// CredentialStore keeps users' WebAuthn credentials. It is optional: a
// Store without it cannot serve the WEBAUTHN factor, and mfa.New refuses a
// configuration that enables WEBAUTHN on such a Store. All backends of this
// module implement it. ForgetUser (Eraser) also removes a user's
// credentials on a Store that implements it.
type CredentialStore interface {
	// AddCredential stores c. It returns ErrCredentialExists, changing
	// nothing, if a credential with c.ID exists for any user. Atomic: of
	// concurrent calls with one ID exactly one succeeds.
	AddCredential(ctx context.Context, c Credential) error

	// Credentials returns the user's credentials ordered by CreatedAt
	// (then ID); an empty (possibly nil) slice and nil when there are none.
	Credentials(ctx context.Context, user string) ([]Credential, error)

	// UseCredential records a verified assertion of the user's credential
	// id: SignCount becomes signCount, LastUsedAt at, and Data data (flags
	// such as backup state may change). If signCount is not above the
	// stored count, and either is non-zero, it returns ErrSignCount and
	// changes nothing (S32; authenticators that keep the counter at 0 pass).
	// It returns ErrNotFound if the user has no credential id. Atomic: of
	// concurrent calls with one signCount at most one succeeds.
	UseCredential(ctx context.Context, user string, id []byte, signCount uint32, data []byte, at time.Time) error

	// DeleteCredential removes the user's credential id and reports
	// whether it existed; a missing one is a no-op with a nil error.
	DeleteCredential(ctx context.Context, user string, id []byte) (bool, error)
}

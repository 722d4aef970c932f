package storagetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mfakit/mfakit/storage"
)

// testCancelled calls every method with a cancelled context: each must
// return an error and write nothing.
func testCancelled(t *testing.T, newStore NewStore) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	const u = "cancelled"
	expectAllFail(t, ctx, s, u, "with a cancelled context")
	// Nothing was written.
	bg := context.Background()
	if _, err := s.Enrollment(bg, u, storage.Authenticator); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a cancelled BeginEnrollment left a record: %v", err)
	}
	if err := s.ConsumeCode(bg, u, "p", []byte{1}, base); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a cancelled PutCode left a code: %v", err)
	}
	if a, err := s.Attempts(bg, u, storage.Authenticator); err != nil || a.Failures != 0 {
		t.Fatalf("a cancelled ReserveAttempt counted: %+v %v", a, err)
	}
	if n, err := s.RecoveryCodesLeft(bg, u); err != nil || n != 0 {
		t.Fatalf("a cancelled ReplaceRecoveryCodes stored %d codes (%v)", n, err)
	}
	if wait, err := s.ReserveSend(bg, u, base, storage.SendLimit{Window: time.Hour, Max: 1}); err != nil || wait != 0 {
		t.Fatalf("a cancelled ReserveSend was recorded: wait %v, %v", wait, err)
	}
	if c, ok := s.(storage.CredentialStore); ok {
		if got, err := c.Credentials(bg, u); err != nil || len(got) != 0 {
			t.Fatalf("a cancelled AddCredential stored %+v (%v)", got, err)
		}
	}
}

// Unavailable checks a store whose connection the caller has closed (or
// whose server is gone): every method, those of the optional interfaces
// it implements included, must return an error, never panic and never
// report success or an answer about the data.
func Unavailable(t *testing.T, s storage.Store) {
	t.Helper()
	expectAllFail(t, context.Background(), s, "unavailable", "on a closed connection")
}

func expectAllFail(t *testing.T, ctx context.Context, s storage.Store, u, how string) {
	t.Helper()
	const f = storage.Authenticator
	hash := bytes.Repeat([]byte{1}, 32)
	calls := map[string]func() error{
		"Enrollments":       func() error { _, err := s.Enrollments(ctx, u); return err },
		"Enrollment":        func() error { _, err := s.Enrollment(ctx, u, f); return err },
		"BeginEnrollment":   func() error { return s.BeginEnrollment(ctx, pending(u, f, "x")) },
		"ConfirmEnrollment": func() error { return s.ConfirmEnrollment(ctx, u, f, "x", 1, base) },
		"AcceptStep":        func() error { return s.AcceptStep(ctx, u, f, 1) },
		"DeleteEnrollment":  func() error { _, err := s.DeleteEnrollment(ctx, u, f); return err },
		"PutCode": func() error {
			return s.PutCode(ctx, storage.Code{User: u, Purpose: "p", Hash: []byte{1}, ExpiresAt: base.Add(time.Hour)})
		},
		"ConsumeCode":    func() error { return s.ConsumeCode(ctx, u, "p", []byte{1}, base) },
		"DeleteCode":     func() error { return s.DeleteCode(ctx, u, "p") },
		"Attempts":       func() error { _, err := s.Attempts(ctx, u, f); return err },
		"ReserveAttempt": func() error { _, err := s.ReserveAttempt(ctx, u, f, base, policy); return err },
		"ResetAttempts":  func() error { return s.ResetAttempts(ctx, u, f) },
		"ReserveSend": func() error {
			_, err := s.ReserveSend(ctx, u, base, storage.SendLimit{Window: time.Hour, Max: 1})
			return err
		},
		"ReplaceRecoveryCodes": func() error { return s.ReplaceRecoveryCodes(ctx, u, [][]byte{hash}) },
		"UseRecoveryCode":      func() error { return s.UseRecoveryCode(ctx, u, hash) },
		"RecoveryCodesLeft":    func() error { _, err := s.RecoveryCodesLeft(ctx, u); return err },
		"ForgetUser":           func() error { return s.ForgetUser(ctx, u, []string{"email:" + u}) },
	}
	if c, ok := s.(storage.Cleaner); ok {
		calls["DeleteExpired"] = func() error { _, err := c.DeleteExpired(ctx, base); return err }
	}
	if r, ok := s.(storage.ReservingReader); ok {
		calls["ReserveFactor"] = func() error { _, _, err := r.ReserveFactor(ctx, u, f, base, policy); return err }
	}
	if r, ok := s.(storage.Resealer); ok {
		calls["ResealSecret"] = func() error { return r.ResealSecret(ctx, u, f, "x", "k1", []byte("s"), "k2") }
	}
	if r, ok := s.(storage.SendReleaser); ok {
		calls["ReleaseSend"] = func() error { return r.ReleaseSend(ctx, u, base) }
	}
	if c, ok := s.(storage.CredentialStore); ok {
		id := []byte("cred-" + u)
		calls["AddCredential"] = func() error {
			return c.AddCredential(ctx, storage.Credential{User: u, ID: id, Name: "n", Data: []byte("d"), CreatedAt: base})
		}
		calls["Credentials"] = func() error { _, err := c.Credentials(ctx, u); return err }
		calls["UseCredential"] = func() error { return c.UseCredential(ctx, u, id, 1, []byte("d"), base) }
		calls["DeleteCredential"] = func() error { _, err := c.DeleteCredential(ctx, u, id); return err }
	}
	for name, call := range calls {
		err := call()
		if err == nil {
			t.Errorf("%s %s returned nil", name, how)
		}
		for _, sentinel := range []error{storage.ErrNotFound, storage.ErrAlreadyVerified, storage.ErrStepReused,
			storage.ErrExpired, storage.ErrCodeMismatch, storage.ErrLocked,
			storage.ErrCredentialExists, storage.ErrSignCount} {
			if errors.Is(err, sentinel) {
				t.Errorf("%s %s returned %v, an answer about data it cannot have read", name, how, err)
			}
		}
	}
}

package mfa_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage/memstore"
)

// Enroll an authenticator, then check a code at sign-in; the same code is
// refused the second time (S3).
func ExampleService() {
	ctx := context.Background()
	svc, err := mfa.New(memstore.New(), &mailertest.Recorder{}, mfa.NewRandomKeyring(), mfa.Config{Issuer: "Acme"})
	if err != nil {
		panic(err)
	}
	key, err := svc.BeginAuthenticator(ctx, "alice")
	if err != nil {
		panic(err)
	}
	// The user scans key.QRPNG(mfa.QRSize) or types key.Secret; their app
	// then shows the current code, computed here from the URI.
	secret, p, _ := mfa.ParseKeyURI(key.URI)
	code := p.Code(secret, p.Step(svc.Config().Now()))

	fmt.Println(svc.VerifyAuthenticator(ctx, "alice", code))
	err = svc.CheckAuthenticator(ctx, "alice", code)
	fmt.Println(errors.Is(err, mfa.ErrCodeReused))
	// Output:
	// <nil>
	// true
}

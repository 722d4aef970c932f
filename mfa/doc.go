// Package mfa is the domain of mfakit: authenticator (TOTP), email and
// passkey (WebAuthn, with Config.WebAuthn) enrollment, code and assertion
// checks with replay protection and lockout, self and admin reset, and
// status. It knows nothing of HTTP; package httpx serves it.
//
// A Service needs a Store, a Mailer and a Keyring; everything else is an
// optional Config whose zero value is safe:
//
//	keys, err := mfa.NewKeyring("k1", map[string][]byte{"k1": key32})
//	if err != nil { ... }
//	svc, err := mfa.New(memstore.New(), &mailer.Writer{W: os.Stdout}, keys, mfa.Config{Issuer: "Acme"})
//	if err != nil { ... }
//	key, _ := svc.BeginAuthenticator(ctx, "alice@example.com") // show key.QRPNG(mfa.QRSize)
//	err = svc.VerifyAuthenticator(ctx, "alice@example.com", "123456")
//	// At every later sign-in, after the host checked the password:
//	ch, err := svc.StartChallenge(ctx, "alice@example.com", "alice@example.com") // ch.Token goes to the client
//	res, err := svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: "654321"})     // res.User passed MFA
//
// Errors are values: test them with errors.Is against the Err variables, or
// errors.As into *LockedError and *RateLimitedError for the time to wait.
package mfa

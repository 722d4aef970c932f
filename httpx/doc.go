// Package httpx serves mfakit over HTTP: one http.Handler per endpoint of
// the MFA setup API, authentication through the host's Authenticator (a
// session cookie, a Bearer token: whatever the host already runs), CSRF
// protection for cookie sessions, and RFC 9457 problem+json errors with
// stable codes.
//
// Mounting the whole API on an existing mux takes a few lines:
//
//	svc, err := mfa.New(store, mail, keys, mfa.Config{Issuer: "Acme"})
//	if err != nil { ... }
//	api := httpx.New(svc, httpx.AuthenticatorFunc(userFromSession), httpx.Config{})
//	mux := http.NewServeMux()
//	api.Mount(mux, "", sessions.LoadAndSave) // or api.Mount(mux, "/mfa"); middleware is optional
//	mux.Handle("/", myApp)
//	http.ListenAndServe(":8080", mux)
//
// An OAuth host passes httpx.Bearer(tokens) instead, and its client
// credentials as Config.Clients.
//
// Sign-in stays the host's: after its password check it calls
// mfa.Service.StartChallenge, then completes the second step with
// Handlers.SignIn (a cookie app's code form) or Handlers.StateTokenGrant
// (an OAuth token endpoint, beside Handlers.WriteChallenge).
// Auth.RequireMFA guards routes that need a recent MFA, and
// Config.OnVerified tells the host when a user re-verified.
//
// Hosts on chi, gin, echo or fiber mount the single handlers
// (api.MFADetails(), api.AssociateQRCode(), ...) on their own routes; the
// admin reset reads the username with r.PathValue("username"), and the
// removal of a passkey its ID with r.PathValue("id"), which such a host
// sets with r.SetPathValue.
package httpx

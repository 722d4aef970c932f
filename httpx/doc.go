// Package httpx serves mfakit over HTTP: one http.Handler per endpoint of
// the MFA setup API, authentication middleware driven by the host's
// Authorizer, and RFC 9457 problem+json errors with stable codes.
//
// Mounting the whole API on an existing mux takes a few lines:
//
//	svc, err := mfa.New(store, mail, keys, mfa.Config{Issuer: "Acme"})
//	if err != nil { ... }
//	api := httpx.New(svc, myAuthorizer, httpx.Config{})
//	mux := http.NewServeMux()
//	api.Mount(mux, "")                // or api.Mount(mux, "/mfa")
//	mux.Handle("/", myApp)
//	http.ListenAndServe(":8080", mux)
//
// A host's token endpoint adds the MFA step of sign-in with
// mfa.Service.StartChallenge, Handlers.WriteChallenge and
// Handlers.StateTokenGrant; Auth.RequireMFA guards routes that need a
// recent MFA.
//
// Hosts on chi, gin, echo or fiber mount the single handlers
// (api.MFADetails(), api.AssociateQRCode(), ...) on their own routes; the
// admin reset reads the username with r.PathValue("username"), which such
// a host sets with r.SetPathValue.
package httpx

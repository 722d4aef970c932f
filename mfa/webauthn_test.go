package mfa_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/mfakit/mfakit/mailer/mailertest"
	"github.com/mfakit/mfakit/mfa"
	"github.com/mfakit/mfakit/storage"
	"github.com/mfakit/mfakit/storage/memstore"
)

// rp is the relying party of the WebAuthn tests, as a browser at its
// origin sees it.
var rp = virtualwebauthn.RelyingParty{Name: "Acme", ID: "example.com", Origin: "https://example.com"}

func webAuthnConfig() mfa.Config {
	return mfa.Config{WebAuthn: &mfa.WebAuthnConfig{RPID: rp.ID, RPOrigins: []string{rp.Origin}}}
}

// passkey is a software authenticator holding one credential.
type passkey struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newPasskey() *passkey {
	return &passkey{rp: rp, auth: virtualwebauthn.NewAuthenticator(), cred: newCredential()}
}

// newCredential is virtualwebauthn.NewCredential(KeyTypeEC2) for a key
// whose coordinates both take 32 bytes: virtualwebauthn writes them
// without their leading zeros, which a verifier rightly refuses.
func newCredential() virtualwebauthn.Credential {
	for {
		c := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(c.Key.Data)
		if err != nil {
			panic(err)
		}
		if pub := k.(*ecdsa.PrivateKey).PublicKey; len(pub.X.Bytes()) == 32 && len(pub.Y.Bytes()) == 32 {
			return c
		}
	}
}

// register answers creation options as navigator.credentials.create and
// toJSON() would.
func (p *passkey) register(t testing.TB, options []byte) []byte {
	t.Helper()
	opts, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		t.Fatalf("creation options %s: %v", options, err)
	}
	p.auth.Options.UserHandle = []byte(opts.UserID)
	return []byte(virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts))
}

// assert answers request options as navigator.credentials.get would,
// with the counter advanced by one unless it is kept at zero.
func (p *passkey) assert(t testing.TB, options []byte) []byte {
	t.Helper()
	opts, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		t.Fatalf("request options %s: %v", options, err)
	}
	if p.cred.Counter > 0 {
		p.cred.Counter++
	}
	return []byte(virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts))
}

// addPasskey registers a new passkey for user under name.
func (f *fixture) addPasskey(t *testing.T, user, name string) (*passkey, mfa.CredentialInfo) {
	t.Helper()
	ctx := context.Background()
	opts, err := f.svc.BeginWebAuthnEnrollment(ctx, user, "")
	if err != nil {
		t.Fatal(err)
	}
	p := newPasskey()
	info, err := f.svc.FinishWebAuthnEnrollment(ctx, user, name, p.register(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	return p, info
}

// checkOptions returns fresh request options for a check of user.
func (f *fixture) checkOptions(t *testing.T, user string) []byte {
	t.Helper()
	opts, err := f.svc.BeginWebAuthnCheck(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// creationOptions is what the tests read of creation options.
type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct{ ID, Name string }
		User      struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			DisplayName string `json:"displayName"`
		} `json:"user"`
		ExcludeCredentials []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		Attestation string `json:"attestation"`
		Timeout     int    `json:"timeout"`
	} `json:"publicKey"`
}

var b64url = base64.RawURLEncoding

func TestWebAuthnConfig(t *testing.T) { // S31
	store := memstore.New()
	newSvc := func(cfg mfa.Config) (*mfa.Service, error) {
		return mfa.New(store, &mailertest.Recorder{}, mfa.NewRandomKeyring(), cfg)
	}
	for _, c := range []struct {
		name string
		wc   mfa.WebAuthnConfig
		want string
	}{
		{"no RP ID", mfa.WebAuthnConfig{RPOrigins: []string{"https://example.com"}}, "RPID is required"},
		{"no origins", mfa.WebAuthnConfig{RPID: "example.com"}, "RPOrigins is required"},
		{"URL as RP ID", mfa.WebAuthnConfig{RPID: "https://example.com", RPOrigins: []string{"https://example.com"}}, "not a domain"},
		{"RP ID with port", mfa.WebAuthnConfig{RPID: "example.com:443", RPOrigins: []string{"https://example.com"}}, "RPID"},
		{"upper case", mfa.WebAuthnConfig{RPID: "Example.com", RPOrigins: []string{"https://example.com"}}, "lower case"},
		{"TLD", mfa.WebAuthnConfig{RPID: "com", RPOrigins: []string{"https://com"}}, "RPID"},
		{"single label", mfa.WebAuthnConfig{RPID: "intranet", RPOrigins: []string{"https://intranet"}}, "RPID"},
		{"IP", mfa.WebAuthnConfig{RPID: "127.0.0.1", RPOrigins: []string{"http://127.0.0.1"}}, "RPID"},
		{"path", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://example.com/"}}, "without a path"},
		{"query", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://example.com?x"}}, "without a path"},
		{"no scheme", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"example.com"}}, "https://"},
		{"ftp", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"ftp://example.com"}}, "https://"},
		{"plain http", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"http://example.com"}}, "must use https"},
		{"other site", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://example.org"}}, "not on the RP ID"},
		{"suffix only", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://badexample.com"}}, "not on the RP ID"},
		{"user info", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://a@example.com"}}, "user name"},
		{"bad UV", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://example.com"}, UserVerification: "always"}, "UserVerification"},
		{"bad attestation", mfa.WebAuthnConfig{RPID: "example.com", RPOrigins: []string{"https://example.com"}, Attestation: "all"}, "Attestation"},
	} {
		_, err := newSvc(mfa.Config{WebAuthn: &c.wc})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one that says %q", c.name, err, c.want)
		}
	}
	if _, err := newSvc(mfa.Config{Factors: []mfa.Factor{mfa.WebAuthn}}); err == nil {
		t.Error("WEBAUTHN in Factors without Config.WebAuthn was accepted")
	}
	// A Store without CredentialStore cannot serve WEBAUTHN.
	type plainStore struct{ storage.Store }
	_, err := mfa.New(plainStore{store}, &mailertest.Recorder{}, mfa.NewRandomKeyring(), webAuthnConfig())
	if err == nil || !strings.Contains(err.Error(), "CredentialStore") {
		t.Errorf("a Store without CredentialStore: %v", err)
	}

	// Defaults, and the local development setup of the demo.
	svc, err := newSvc(mfa.Config{Issuer: "Acme", WebAuthn: &mfa.WebAuthnConfig{RPID: "localhost",
		RPOrigins: []string{"http://localhost:8080", "HTTPS://LOCALHOST:8443"}}})
	if err != nil {
		t.Fatal(err)
	}
	c := svc.Config()
	if got := c.Factors; len(got) != 3 || got[2] != mfa.WebAuthn {
		t.Errorf("Factors %v", got)
	}
	if w := c.WebAuthn; w.RPDisplayName != "Acme" || w.UserVerification != "preferred" || w.Attestation != "none" ||
		w.RPOrigins[1] != "https://localhost:8443" {
		t.Errorf("defaults %+v", *w)
	}
	if got := c.ChallengeOrder; len(got) != 3 || got[0] != mfa.WebAuthn {
		t.Errorf("ChallengeOrder %v", got)
	}
	// Configured but not listed: off.
	svc, err = newSvc(mfa.Config{Factors: []mfa.Factor{mfa.Authenticator}, WebAuthn: &mfa.WebAuthnConfig{RPID: "example.com",
		RPOrigins: []string{"https://login.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.BeginWebAuthnEnrollment(context.Background(), "alice", ""); !errors.Is(err, mfa.ErrFactorDisabled) {
		t.Errorf("WEBAUTHN not listed: %v", err)
	}
}

func TestWebAuthnEnrollListCheckRemove(t *testing.T) { // S31, S33
	f := newFixture(t, webAuthnConfig())
	ctx := mfa.WithRequestInfo(context.Background(), mfa.RequestInfo{Email: "alice@example.com"})
	const user = "alice@example.com"

	raw, err := f.svc.BeginWebAuthnEnrollment(ctx, user, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	var opts creationOptions
	if err := json.Unmarshal(raw, &opts); err != nil {
		t.Fatal(err)
	}
	pk := opts.PublicKey
	challenge, _ := b64url.DecodeString(pk.Challenge)
	userID, _ := b64url.DecodeString(pk.User.ID)
	if len(challenge) < 32 || len(userID) == 0 || bytes.Contains(userID, []byte("alice")) ||
		pk.User.Name != user || pk.User.DisplayName != "Alice" || pk.RP.ID != "example.com" || pk.RP.Name != "mfakit" ||
		pk.AuthenticatorSelection.ResidentKey != "preferred" || pk.AuthenticatorSelection.UserVerification != "preferred" ||
		pk.Attestation != "none" || len(pk.ExcludeCredentials) != 0 || pk.Timeout != 300000 {
		t.Fatalf("creation options %s", raw)
	}
	phone := newPasskey()
	phone.cred.Counter = 1
	info, err := f.svc.FinishWebAuthnEnrollment(ctx, user, "  Phone ", phone.register(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.ID, phone.cred.ID) || info.Name != "Phone" || !info.CreatedAt.Equal(f.clock.Now()) {
		t.Fatalf("credential %+v", info)
	}
	if ev := f.events.Events(); ev[len(ev)-1].Type != mfa.EventEnrollVerified || ev[len(ev)-1].Credential != "Phone" ||
		ev[len(ev)-1].CredentialID != b64url.EncodeToString(phone.cred.ID) || ev[len(ev)-1].Factor != mfa.WebAuthn {
		t.Fatalf("events %+v", ev)
	}
	if msg, ok := f.mail.Last(user); !ok || !strings.Contains(msg.Text, "added a passkey named \u201cPhone\u201d") {
		t.Fatalf("change notice %+v", msg)
	}

	// The second one: the first is excluded, the user handle is the same,
	// and an empty name is the authenticator's.
	f.clock.Add(time.Minute)
	raw, err = f.svc.BeginWebAuthnEnrollment(ctx, user, "")
	if err != nil {
		t.Fatal(err)
	}
	var opts2 creationOptions
	json.Unmarshal(raw, &opts2)
	if len(opts2.PublicKey.ExcludeCredentials) != 1 || opts2.PublicKey.ExcludeCredentials[0].ID != b64url.EncodeToString(phone.cred.ID) ||
		opts2.PublicKey.User.ID != pk.User.ID || opts2.PublicKey.User.DisplayName != user {
		t.Fatalf("second creation options %s", raw)
	}
	key := newPasskey()
	copy(key.auth.Aaguid[:], []byte{0xd5, 0x48, 0x82, 0x6e, 0x79, 0xb4, 0xdb, 0x40, 0xa3, 0xd8, 0x11, 0x11, 0x6f, 0x7e, 0x83, 0x49})
	if _, err := f.svc.FinishWebAuthnEnrollment(ctx, user, "", key.register(t, raw)); err != nil {
		t.Fatal(err)
	}
	list, err := f.svc.ListCredentials(ctx, user)
	if err != nil || len(list) != 2 || list[0].Name != "Phone" || list[1].Name != "Bitwarden" || !list[1].LastUsedAt.IsZero() {
		t.Fatalf("list %+v, %v", list, err)
	}
	st, err := f.svc.Status(ctx, user)
	if err != nil || st.Details[mfa.WebAuthn] != (mfa.FactorStatus{Verified: true, Count: 2}) || st.Available[2] != mfa.WebAuthn {
		t.Fatalf("status %+v, %v", st, err)
	}

	// A check (step-up) with either.
	opts3 := f.checkOptions(t, user)
	if !bytes.Contains(opts3, []byte(b64url.EncodeToString(phone.cred.ID))) || !bytes.Contains(opts3, []byte(b64url.EncodeToString(key.cred.ID))) {
		t.Fatalf("request options %s", opts3)
	}
	f.clock.Add(time.Minute)
	if err := f.svc.CheckWebAuthn(ctx, user, phone.assert(t, opts3)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CheckWebAuthn(ctx, user, key.assert(t, f.checkOptions(t, user))); err != nil {
		t.Fatal(err)
	}
	creds, _ := f.store.Credentials(ctx, user)
	if creds[0].SignCount != 2 || !creds[0].LastUsedAt.Equal(f.clock.Now()) {
		t.Fatalf("stored after use %+v", creds[0])
	}
	if n := f.events.Count(user, mfa.WebAuthn, mfa.EventVerified); n != 2 {
		t.Fatalf("%d verified events", n)
	}

	// Remove one: the other stays, the notice names it.
	if err := f.svc.RemoveCredential(ctx, user, phone.cred.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RemoveCredential(ctx, user, phone.cred.ID); !errors.Is(err, mfa.ErrCredentialNotFound) {
		t.Fatalf("removed twice: %v", err)
	}
	if msg, _ := f.mail.Last(user); !strings.Contains(msg.Text, "removed a passkey named \u201cPhone\u201d") {
		t.Fatalf("notice %s", msg.Text)
	}
	if f.events.Has(mfa.EventSessionsEnded) {
		t.Fatal("sessions ended while a factor is left")
	}
	if err := f.svc.CheckWebAuthn(ctx, user, phone.assert(t, f.checkOptions(t, user))); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Fatalf("removed credential: %v", err)
	}
}

// TestWebAuthnRefusals: every way a registration or an assertion can be
// wrong is refused, and nothing is stored or counted up (S31, S32).
func TestWebAuthnRefusals(t *testing.T) {
	f := newFixture(t, webAuthnConfig())
	ctx := context.Background()
	const alice, bob = "alice@example.com", "bob@example.com"
	begin := func(user string) []byte {
		t.Helper()
		raw, err := f.svc.BeginWebAuthnEnrollment(ctx, user, "")
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	finish := func(user string, body []byte) error {
		_, err := f.svc.FinishWebAuthnEnrollment(ctx, user, "", body)
		return err
	}

	// Registration.
	for _, c := range []struct {
		name string
		edit func(p *passkey)
	}{
		{"wrong origin", func(p *passkey) { p.rp.Origin = "https://evil.example.org" }},
		{"a subdomain not allowed", func(p *passkey) { p.rp.Origin = "https://login.example.com" }},
		{"wrong RP ID", func(p *passkey) { p.rp.ID = "evil.example.org" }},
		{"no user presence", func(p *passkey) { p.auth.Options.UserNotPresent = true }},
		{"backup state without eligibility", func(p *passkey) { p.auth.Options.BackupState = true }},
	} {
		p := newPasskey()
		c.edit(p)
		if err := finish(alice, p.register(t, begin(alice))); !errors.Is(err, mfa.ErrInvalidCredential) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, body := range []string{"", "{", "null", "[]", `{"id":"x"}`, `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`,
		strings.Repeat(" ", mfa.MaxWebAuthnJSON+1)} {
		begin(alice)
		if err := finish(alice, []byte(body)); !errors.Is(err, mfa.ErrInvalidCredential) {
			t.Errorf("malformed %.20q: %v", body, err)
		}
	}
	if _, err := f.svc.FinishWebAuthnEnrollment(ctx, alice, "a\nb", []byte("{}")); !errors.Is(err, mfa.ErrInvalidName) {
		t.Errorf("name with a line break: %v", err)
	}
	if _, err := f.svc.FinishWebAuthnEnrollment(ctx, alice, strings.Repeat("x", 65), []byte("{}")); !errors.Is(err, mfa.ErrInvalidName) {
		t.Errorf("long name: %v", err)
	}
	// Another user's challenge: options made for bob, answered for alice.
	p := newPasskey()
	if err := finish(alice, p.register(t, begin(bob))); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Errorf("bob's challenge for alice: %v", err)
	}
	// Expired challenge (by the Service's clock).
	raw := begin(alice)
	f.clock.Add(5*time.Minute + time.Second)
	if err := finish(alice, newPasskey().register(t, raw)); !errors.Is(err, mfa.ErrChallengeExpired) {
		t.Errorf("expired: %v", err)
	}
	// An older challenge, replaced by a newer one.
	old := begin(alice)
	begin(alice)
	if err := finish(alice, newPasskey().register(t, old)); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Errorf("replaced challenge: %v", err)
	}
	if creds, _ := f.store.Credentials(ctx, alice); len(creds) != 0 {
		t.Fatalf("stored after refusals: %+v", creds)
	}
	// Replay: the same answer twice.
	pa := newPasskey()
	pa.cred.Counter = 10
	reg := pa.register(t, begin(alice))
	if err := finish(alice, reg); err != nil {
		t.Fatal(err)
	}
	if err := finish(alice, reg); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Errorf("replayed registration: %v", err)
	}
	// The same authenticator for bob: its ID is taken (S32).
	pb := &passkey{rp: rp, auth: pa.auth, cred: pa.cred}
	if err := finish(bob, pb.register(t, begin(bob))); !errors.Is(err, mfa.ErrCredentialExists) {
		t.Errorf("alice's credential for bob: %v", err)
	}
	bobKey := newPasskey()
	if err := finish(bob, bobKey.register(t, begin(bob))); err != nil {
		t.Fatal(err)
	}
	if len(f.events.Take()) == 0 {
		t.Fatal("no events")
	}

	// Assertions.
	check := func(body []byte) error { return f.svc.CheckWebAuthn(ctx, alice, body) }
	reset := func() {
		if err := f.store.ResetAttempts(ctx, alice, mfa.WebAuthn); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		edit func(p *passkey)
	}{
		{"wrong origin", func(p *passkey) { p.rp.Origin = "https://evil.example.org" }},
		{"wrong RP ID", func(p *passkey) { p.rp.ID = "evil.example.org" }},
		{"no user presence", func(p *passkey) { p.auth.Options.UserNotPresent = true }},
		{"backup eligibility changed", func(p *passkey) { p.auth.Options.BackupEligible = true }},
		{"another key", func(p *passkey) { p.cred.Key = newCredential().Key }},
	} {
		reset()
		q := &passkey{rp: pa.rp, auth: pa.auth, cred: pa.cred}
		c.edit(q)
		if err := check(q.assert(t, f.checkOptions(t, alice))); !errors.Is(err, mfa.ErrInvalidCredential) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	reset()
	if err := check(bobKey.assert(t, f.checkOptions(t, alice))); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Errorf("bob's credential for alice: %v", err)
	}
	for _, body := range []string{"", "{", `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`} {
		reset()
		if err := check([]byte(body)); !errors.Is(err, mfa.ErrInvalidCredential) {
			t.Errorf("malformed %q: %v", body, err)
		}
	}
	reset()
	// An answer to a sign-in's challenge is no answer to a check's.
	opts := f.checkOptions(t, alice)
	good := pa.assert(t, opts)
	f.clock.Add(5*time.Minute + time.Second)
	if err := check(good); !errors.Is(err, mfa.ErrChallengeExpired) {
		t.Errorf("expired: %v", err)
	}
	good = pa.assert(t, f.checkOptions(t, alice))
	if err := check(good); err != nil {
		t.Fatal(err)
	}
	if err := check(good); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Errorf("replayed assertion: %v", err)
	}
	creds, _ := f.store.Credentials(ctx, alice)
	if creds[0].SignCount != pa.cred.Counter {
		t.Fatalf("sign count %d, authenticator at %d", creds[0].SignCount, pa.cred.Counter)
	}
	if n := f.events.Count(alice, mfa.WebAuthn, mfa.EventFailure); n < 10 {
		t.Fatalf("%d failures counted", n)
	}
}

// TestWebAuthnCloneSuspected: a signature counter that goes back is
// refused, audited, and not saved (S32).
func TestWebAuthnCloneSuspected(t *testing.T) {
	f := newFixture(t, webAuthnConfig())
	ctx := context.Background()
	const user = "alice@example.com"
	p, info := f.addPasskeyCounting(t, user, 5)
	if err := f.svc.CheckWebAuthn(ctx, user, p.assert(t, f.checkOptions(t, user))); err != nil { // 6
		t.Fatal(err)
	}
	clone := &passkey{rp: p.rp, auth: p.auth, cred: p.cred}
	clone.cred.Counter = 3 // the copy is behind
	err := f.svc.CheckWebAuthn(ctx, user, clone.assert(t, f.checkOptions(t, user)))
	if !errors.Is(err, mfa.ErrCloneSuspected) {
		t.Fatalf("clone: %v", err)
	}
	var ev mfa.Event
	for _, e := range f.events.Events() {
		if e.Type == mfa.EventCloneSuspected {
			ev = e
		}
	}
	if ev.Credential != info.Name || ev.CredentialID != b64url.EncodeToString(info.ID) || ev.Factor != mfa.WebAuthn || ev.Reason != "clone_suspected" {
		t.Fatalf("clone event %+v", ev)
	}
	if f.events.Count(user, mfa.WebAuthn, mfa.EventFailure) != 1 {
		t.Fatal("the refusal did not count as a failure")
	}
	creds, _ := f.store.Credentials(ctx, user)
	if creds[0].SignCount != 6 {
		t.Fatalf("counter saved after a clone warning: %d", creds[0].SignCount)
	}
	// The same counter again is refused too; the genuine key goes on.
	same := &passkey{rp: p.rp, auth: p.auth, cred: p.cred}
	same.cred.Counter = 5 // asserts with 6, the stored value
	if err := f.svc.CheckWebAuthn(ctx, user, same.assert(t, f.checkOptions(t, user))); !errors.Is(err, mfa.ErrCloneSuspected) {
		t.Fatalf("equal counter: %v", err)
	}
	if err := f.svc.CheckWebAuthn(ctx, user, p.assert(t, f.checkOptions(t, user))); err != nil {
		t.Fatal(err)
	}
	// Authenticators that keep the counter at 0 pass every time.
	z, _ := f.addPasskey(t, user, "Synced")
	for range 3 {
		if err := f.svc.CheckWebAuthn(ctx, user, z.assert(t, f.checkOptions(t, user))); err != nil {
			t.Fatal(err)
		}
	}
}

// addPasskeyCounting is addPasskey for an authenticator whose counter
// starts at counter.
func (f *fixture) addPasskeyCounting(t *testing.T, user string, counter uint32) (*passkey, mfa.CredentialInfo) {
	t.Helper()
	opts, err := f.svc.BeginWebAuthnEnrollment(context.Background(), user, "")
	if err != nil {
		t.Fatal(err)
	}
	p := newPasskey()
	p.cred.Counter = counter
	info, err := f.svc.FinishWebAuthnEnrollment(context.Background(), user, "Key", p.register(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	return p, info
}

// TestWebAuthnLockout: of 100 concurrent wrong assertions at most
// MaxFailures are verified; then even a right one is refused (S8, S22, S33).
func TestWebAuthnLockout(t *testing.T) {
	f := newFixture(t, webAuthnConfig())
	ctx := context.Background()
	const user = "alice@example.com"
	p, _ := f.addPasskey(t, user, "Phone")
	opts := f.checkOptions(t, user)
	wrong := &passkey{rp: p.rp, auth: p.auth, cred: p.cred}
	wrong.cred.Key = newCredential().Key
	bad := wrong.assert(t, opts)
	var wg sync.WaitGroup
	var mu sync.Mutex
	locked := 0
	for range 100 {
		wg.Go(func() {
			err := f.svc.CheckWebAuthn(ctx, user, bad)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, mfa.ErrLocked) {
				locked++
			} else if !errors.Is(err, mfa.ErrInvalidCredential) {
				t.Errorf("wrong assertion: %v", err)
			}
		})
	}
	wg.Wait()
	max := f.svc.Config().MaxFailures
	if n := f.events.Count(user, mfa.WebAuthn, mfa.EventFailure); n > max || locked < 100-max {
		t.Fatalf("%d assertions verified, %d locked; at most %d may be verified", n, locked, max)
	}
	if err := f.svc.CheckWebAuthn(ctx, user, p.assert(t, opts)); !errors.Is(err, mfa.ErrLocked) {
		t.Fatalf("right assertion while locked: %v", err)
	}
	f.clock.Add(time.Hour)
	if err := f.svc.CheckWebAuthn(ctx, user, p.assert(t, f.checkOptions(t, user))); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
}

// TestWebAuthnSignIn: a user with a passkey is asked for it first; the
// state token carries the request options and an assertion completes it.
func TestWebAuthnSignIn(t *testing.T) {
	f := newFixture(t, webAuthnConfig())
	ctx := context.Background()
	const user = "alice@example.com"
	secret := f.enroll(t, user)
	p, _ := f.addPasskey(t, user, "Phone")

	ch, err := f.svc.StartChallenge(ctx, user, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Factor != mfa.WebAuthn || ch.Status != mfa.ChallengeVerify || len(ch.PublicKey) == 0 ||
		!bytes.Contains(ch.PublicKey, []byte(b64url.EncodeToString(p.cred.ID))) || !bytes.Contains(ch.PublicKey, []byte(`"rpId":"example.com"`)) {
		t.Fatalf("challenge %+v %s", ch, ch.PublicKey)
	}
	// A wrong assertion keeps the token; the right one completes it.
	wrong := &passkey{rp: p.rp, auth: p.auth, cred: p.cred}
	wrong.rp.Origin = "https://evil.example.org"
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: string(wrong.assert(t, ch.PublicKey))}); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Fatalf("phished assertion: %v", err)
	}
	// A TOTP code is no answer to a WEBAUTHN token.
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.Authenticator, Code: f.code(secret, 1)}); !errors.Is(err, mfa.ErrUnsupportedProof) {
		t.Fatalf("TOTP for a WEBAUTHN token: %v", err)
	}
	// The answer to a step-up's challenge is no answer to the sign-in's.
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: string(p.assert(t, f.checkOptions(t, user)))}); !errors.Is(err, mfa.ErrInvalidCredential) {
		t.Fatalf("check's assertion for the sign-in: %v", err)
	}
	res, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Factor: mfa.WebAuthn, Code: string(p.assert(t, ch.PublicKey))})
	if err != nil || res.User != user || res.Factor != mfa.WebAuthn {
		t.Fatalf("complete: %+v, %v", res, err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: string(p.assert(t, ch.PublicKey))}); !errors.Is(err, mfa.ErrInvalidToken) {
		t.Fatalf("token twice: %v", err)
	}

	// Switch to the authenticator (passkey not at hand), and back.
	ch, _ = f.svc.StartChallenge(ctx, user, "alice@example.com")
	ch2, err := f.svc.SwitchChallenge(ctx, ch.Token, mfa.Authenticator, nil)
	if err != nil || ch2.Factor != mfa.Authenticator || ch2.PublicKey != nil {
		t.Fatalf("switch: %+v, %v", ch2, err)
	}
	ch3, err := f.svc.SwitchChallenge(ctx, ch2.Token, mfa.WebAuthn, nil)
	if err != nil || len(ch3.PublicKey) == 0 {
		t.Fatalf("switch back: %+v, %v", ch3, err)
	}
	// The WebAuthn challenge lives 5 minutes, the token longer.
	f.clock.Add(5*time.Minute + time.Second)
	if _, err := f.svc.CompleteChallenge(ctx, ch3.Token, mfa.Proof{Code: string(p.assert(t, ch3.PublicKey))}); !errors.Is(err, mfa.ErrChallengeExpired) {
		t.Fatalf("late assertion: %v", err)
	}
	ch4, err := f.svc.SwitchChallenge(ctx, ch3.Token, mfa.WebAuthn, nil) // renewed
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch4.Token, mfa.Proof{Code: string(p.assert(t, ch4.PublicKey))}); err != nil {
		t.Fatal(err)
	}

	// A passkey-only user: removing the last one resets as S24 says.
	const bob = "bob@example.com"
	bp, _ := f.addPasskey(t, bob, "Key")
	if _, err := f.svc.GenerateRecoveryCodes(ctx, bob); err != nil {
		t.Fatal(err)
	}
	ch, _ = f.svc.StartChallenge(ctx, bob, "")
	if err := f.svc.RemoveCredential(ctx, bob, bp.cred.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.svc.RecoveryCodesLeft(ctx, bob); n != 0 {
		t.Fatalf("%d recovery codes survived the last factor", n)
	}
	if _, err := f.svc.CompleteChallenge(ctx, ch.Token, mfa.Proof{Code: string(bp.assert(t, ch.PublicKey))}); err == nil {
		t.Fatal("a sign-in begun before the removal completed")
	}
	if f.events.Count(bob, mfa.WebAuthn, mfa.EventSessionsEnded) != 1 || f.events.Count(bob, mfa.WebAuthn, mfa.EventCredentialRemoved) != 1 {
		t.Fatalf("events %v", f.events.Types())
	}
	if st, _ := f.svc.StartChallenge(ctx, bob, ""); st.Status != mfa.ChallengeNone {
		t.Fatalf("bob after removal: %+v", st)
	}
}

// TestWebAuthnResetProof: an assertion proves a factor for a self reset
// of the authenticator (S13), and ends its sessions only when nothing is
// left (S24).
func TestWebAuthnResetProof(t *testing.T) {
	ended := 0
	cfg := webAuthnConfig()
	cfg.EndSessions = func(context.Context, string) { ended++ }
	f := newFixture(t, cfg)
	ctx := context.Background()
	const user = "alice@example.com"
	f.enroll(t, user)
	p, _ := f.addPasskey(t, user, "Phone")
	proof := mfa.Proof{Factor: mfa.WebAuthn, Code: string(p.assert(t, f.checkOptions(t, user)))}
	if err := f.svc.ResetAuthenticator(ctx, user, proof); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Enrollment(ctx, user, mfa.Authenticator); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("authenticator after reset: %v", err)
	}
	if ended != 0 {
		t.Fatal("sessions ended though a passkey is left")
	}
	if err := f.svc.RemoveCredential(ctx, user, p.cred.ID); err != nil {
		t.Fatal(err)
	}
	if ended != 1 {
		t.Fatalf("EndSessions called %d times after the last factor went", ended)
	}
}

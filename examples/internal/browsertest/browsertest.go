// Package browsertest starts the headless Chromium that the examples'
// browser tests drive, with the options this project's machines need, and
// keeps their screenshots out of the working tree.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Start returns a chromedp context on a fresh headless Chromium (Debian's
// chromium, or another Chrome on PATH) whose actions time out after
// timeout; the browser ends with the test. Without a browser it skips t.
func Start(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	browser := find()
	if browser == "" {
		t.Skip("no Chromium found (apt-get install chromium): skipping the browser test")
	}
	// Without the background-networking flags Chromium keeps dialling
	// hosts a closed network refuses.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 1200))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

func find() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Save writes a screenshot named name where artifacts go —
// $MFAKIT_ARTIFACTS (.ci/run points it at an ignored folder), else the
// test's temporary directory, so a test run never writes into the working
// tree — and logs where.
func Save(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := os.Getenv("MFAKIT_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

// AddAuthenticator plugs a virtual passkey authenticator into the tab of
// ctx, through Chrome's WebAuthn testing domain: a CTAP2 authenticator on
// transport (internal for the device's own, usb, nfc, ble...) that keeps
// discoverable credentials, verifies its user, and confirms presence
// without a touch, so navigator.credentials.create and get answer at
// once. Chrome allows one internal authenticator per tab. The first call
// on a tab turns on the virtual environment, without its UI; from then
// on the tab's WebAuthn calls reach only virtual authenticators. The tab
// is the one the page runs in: add authenticators after navigating there.
func AddAuthenticator(t *testing.T, ctx context.Context, transport webauthn.AuthenticatorTransport) webauthn.AuthenticatorID {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Transport:                   transport,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// Credentials returns the credentials a virtual authenticator holds.
func Credentials(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// SetPresence sets whether a virtual authenticator confirms user presence
// on its own. One that does not never answers, as a key nobody touches:
// with several authenticators, that leaves the choice to the others.
func SetPresence(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID, automatic bool) {
	t.Helper()
	_, err := chromedp.Call(ctx, webauthn.SetAutomaticPresenceSimulation,
		webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: id, Enabled: automatic})
	if err != nil {
		t.Fatalf("WebAuthn.setAutomaticPresenceSimulation: %v", err)
	}
}

// RemoveAuthenticator unplugs a virtual authenticator, with its
// credentials (a lost key).
func RemoveAuthenticator(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) {
	t.Helper()
	_, err := chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator,
		webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
	if err != nil {
		t.Fatalf("WebAuthn.removeVirtualAuthenticator: %v", err)
	}
}

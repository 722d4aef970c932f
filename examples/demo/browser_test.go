package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mfakit/mfakit/mfa"
)

// findChromium returns Debian's Chromium (or another Chrome on PATH).
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where the screenshot goes: $MFAKIT_ARTIFACTS (.ci/run
// points it at an ignored folder), else the test's temporary directory,
// so a test run never writes into the working tree.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("MFAKIT_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowserJourney drives the demo page in headless Chromium: sign in,
// set up the authenticator by reading the key off the page, type the code
// computed from it, and see the factor verified (issue #7).
func TestBrowserJourney(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		t.Skip("no Chromium found (apt-get install chromium): skipping the browser test")
	}
	d := startDemo(t, "-db", "")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 1200))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first call starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	err := chromedp.Do(ctx,
		chromedp.Navigate(d.srv.URL+"/"),
		chromedp.WaitVisible(css("#signin-form")),
		// Signing in needs the client credentials the page fetches from
		// /demo-config.json after load; the page marks nothing in the DOM
		// when they arrive, so wait on its state object itself.
		chromedp.Poll[chromedp.Void]("typeof state === 'object' && state.config !== null"),
		chromedp.Click(css("#signin-form button")),
		chromedp.WaitVisible(css("#qr-start")),
		chromedp.Click(css("#qr-start")),
		chromedp.WaitVisible(css("#secret")),
		chromedp.Poll[chromedp.Void](`document.getElementById("secret").textContent.length > 0`),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	secret, err := chromedp.Run(ctx, chromedp.Text(css("#secret")))
	if err != nil {
		t.Fatal(err)
	}
	key, p, err := mfa.ParseKeyURI("otpauth://totp/x?secret=" + strings.TrimSpace(secret))
	if err != nil {
		t.Fatalf("the page shows a key that does not parse (%q): %v", secret, err)
	}
	code := p.Code(key, p.Step(time.Now()))
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#qr-code"), code),
		chromedp.Click(css("#qr-form button")),
		chromedp.Poll[chromedp.Void](`(document.getElementById("status-AUTHENTICATOR") || {textContent: ""}).textContent.includes("verified") || document.getElementById("error").textContent.length > 0`),
	)
	if err != nil {
		t.Fatalf("browser after verify: %v", err)
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(css("#status")))
	errText, _ := chromedp.Run(ctx, chromedp.TextContent(css("#error")))
	if !strings.Contains(status, "AUTHENTICATOR: verified") || errText != "" {
		t.Fatalf("status %q, error %q", status, errText)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(artifactDir(t), "browser-journey.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)

	// A wrong code shows the problem's detail to the person.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#reset-code"), "000000"),
		chromedp.Click(css("#reset-form button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("error").textContent.length > 0`),
	)
	if err != nil {
		t.Fatal(err)
	}
	errText, _ = chromedp.Run(ctx, chromedp.TextContent(css("#error")))
	if !strings.Contains(errText, "(invalid_code)") && !strings.Contains(errText, "(code_reused)") {
		t.Fatalf("wrong code: error shown %q", errText)
	}
}

// The page is served with a strict Content-Security-Policy.
func TestPageHeaders(t *testing.T) {
	d := startDemo(t, "-db", "")
	for _, path := range []string{"/", "/static/app.js", "/static/app.css"} {
		resp, err := d.srv.Client().Get(d.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != contentSecurityPolicy {
			t.Fatalf("%s: %d, CSP %q", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	resp, err := d.srv.Client().Get(d.srv.URL + "/openapi.yaml")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("openapi.yaml: %v %v", err, resp)
	}
	resp.Body.Close()
}

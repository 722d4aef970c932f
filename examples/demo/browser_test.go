package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mfakit/mfakit/examples/internal/browsertest"
	"github.com/mfakit/mfakit/mfa"
)

// TestBrowserJourney drives the demo page in headless Chromium: sign in,
// set up the authenticator by reading the key off the page, type the code
// computed from it, and see the factor verified (issue #7).
func TestBrowserJourney(t *testing.T) {
	ctx := browsertest.Start(t, 90*time.Second)
	d := startDemo(t, "-db", "")

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	err := chromedp.Do(ctx,
		chromedp.Navigate(d.srv.URL+"/"),
		chromedp.WaitVisible(css("#signin-form")),
		// Signing in needs the client credentials the page fetches from
		// /demo-config.json after load; <main> says when they arrived.
		chromedp.WaitVisible(css(`main[data-config="ready"]`)),
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
	browsertest.Save(t, "browser-journey.png", png)

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

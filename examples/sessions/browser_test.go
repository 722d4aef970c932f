package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mfakit/mfakit/examples/internal/browsertest"
	"github.com/mfakit/mfakit/mfa"
)

// js quotes s for a JavaScript expression.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// textIncludes waits until the element sel is on the page and its text
// includes s. A form that navigates is followed by a chromedp.WaitReady of
// an element of the next page first: a poll does not outlive a navigation.
func textIncludes(sel, s string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void]("(document.querySelector(" + js(sel) + ") || {textContent: ''}).textContent.includes(" + js(s) + ")")
}

// onAccountPage waits for the account page and its MFA status (which the
// page's script fetches) to include status.
func onAccountPage(status string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{chromedp.WaitReady(chromedp.CSS("#mfa-status")), textIncludes("#mfa-status", status)}
}

// shown waits until the element sel exists and is not hidden.
func shown(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void]("(e => e !== null && !e.hidden)(document.querySelector(" + js(sel) + "))")
}

// TestBrowserJourney drives the app's pages in headless Chromium: sign in,
// set up the authenticator from the key on the page, sign out and in again
// with a code, open the export (fresh, then after the clock moved past
// the step-up's age, with a new code), delete the account, and sign up
// again under the same name without MFA.
func TestBrowserJourney(t *testing.T) {
	ctx := browsertest.Start(t, 90*time.Second)
	ta := startApp(t)

	const alice, password = "alice@example.com", "alice-password"
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		browsertest.Save(t, name, png)
	}
	login := func(name, password string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(ta.srv.URL + "/login"),
			chromedp.WaitVisible(css("#login-form")),
			chromedp.SendKeys(css("#username"), name),
			chromedp.SendKeys(css("#password"), password),
			chromedp.Click(css("#login-form button")),
		}
	}

	step("sign in with the password", append(login(alice, password), onAccountPage("Off.")...)...)
	step("start the set-up", chromedp.Click(css("#mfa-start")), shown("#mfa-enroll"),
		chromedp.Poll[chromedp.Void](`document.getElementById("mfa-secret").textContent.length > 0`))
	secret, err := chromedp.Run(ctx, chromedp.Text(css("#mfa-secret")))
	if err != nil {
		t.Fatal(err)
	}
	key, p, err := mfa.ParseKeyURI("otpauth://totp/x?secret=" + strings.TrimSpace(secret))
	if err != nil {
		t.Fatalf("the page shows a key that does not parse (%q): %v", secret, err)
	}
	code := func() string { return p.Code(key, p.Step(ta.clock.now())) }
	screenshot("sessions-enroll.png")
	step("turn it on", chromedp.SendKeys(css("#mfa-code"), code()), chromedp.Click(css("#mfa-enroll-form button")),
		textIncludes("#mfa-status", "On:"))

	step("sign out", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login-form")))
	ta.nextStep() // the set-up used this step's code
	step("sign in with the password", append(login(alice, password), chromedp.WaitVisible(css("#code-form")))...)
	step("a wrong code", chromedp.SendKeys(css("#code"), "000000"), chromedp.Click(css("#code-form button")),
		textIncludes("#mfa-error", "code"))
	step("the right code", append([]chromedp.Action[chromedp.Void]{chromedp.SetValue(css("#code"), code()),
		chromedp.Click(css("#code-form button"))}, onAccountPage("On:")...)...)

	step("export, fresh MFA", chromedp.Click(css("#export-start")), shown("#export-data"),
		textIncludes("#export-data", alice))
	ta.clock.advance(6 * time.Minute) // RequireMFA allows 5
	step("export, stale MFA", chromedp.Click(css("#export-start")), shown("#mfa-verify-form"))
	step("re-verify", chromedp.SendKeys(css("#mfa-verify-code"), code()), chromedp.Click(css("#mfa-verify-form button")),
		chromedp.Poll[chromedp.Void](`document.getElementById("mfa-verify-form").hidden && !document.getElementById("export-data").hidden`),
		textIncludes("#export-data", alice))
	screenshot("sessions-journey.png")

	step("delete the account", chromedp.SendKeys(css("#delete-password"), password), chromedp.Click(css("#delete-form button")),
		chromedp.WaitVisible(css("#login-form")), textIncludes("#flash", "deleted"))
	st, err := ta.app.mfa.Status(context.Background(), alice)
	if err != nil || len(st.Details) != 0 {
		t.Fatalf("the kit still knows the deleted user: %+v %v", st.Details, err)
	}

	step("sign up again", append([]chromedp.Action[chromedp.Void]{chromedp.Click(css("#signup-link")),
		chromedp.WaitVisible(css("#signup-form")), chromedp.SendKeys(css("#username"), alice),
		chromedp.SendKeys(css("#password"), "new-password"), chromedp.Click(css("#signup-form button"))},
		onAccountPage("Off.")...)...)
	step("sign out", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login-form")))
	step("sign in without a code", append(login(alice, "new-password"), onAccountPage("Off.")...)...)
}

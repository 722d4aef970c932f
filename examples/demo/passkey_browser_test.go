package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/mfakit/mfakit/examples/internal/browsertest"
)

// TestPasskeyBrowserJourney drives the demo page in headless Chromium with
// Chrome's virtual authenticators ("Passkeys… tested in a real browser"):
// sign in with a password, register a passkey, sign out, sign in with
// password and passkey, add a second passkey on a second authenticator,
// remove the first, lose the first authenticator and still sign in with
// the second. Every step is checked on the page and through the API.
func TestPasskeyBrowserJourney(t *testing.T) {
	ctx := browsertest.Start(t, 2*time.Minute)
	d, port := startPasskeyDemo(t)
	p := &passkeyPage{t: t, ctx: ctx}
	localhost := fmt.Sprintf("http://localhost:%s/", port)

	// Opened at 127.0.0.1, the page says where passkeys work.
	p.open(d.srv.URL + "/")
	if !p.visible("#origin-note") {
		t.Fatal("at 127.0.0.1 the page does not say where passkeys work")
	}
	if href := p.eval(`document.getElementById("origin-link").href`); href != localhost {
		t.Fatalf("the page points to %q, want %q", href, localhost)
	}

	// At localhost, the demo's default relying party, it does not.
	p.open(localhost)
	if p.visible("#origin-note") {
		t.Fatal("at localhost the page still warns about the address")
	}
	if p.eval(`String(typeof PublicKeyCredential === "function" && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function")`) != "true" {
		t.Skip("this Chromium lacks PublicKeyCredential.parseCreationOptionsFromJSON (Chrome 129+)")
	}
	laptop := browsertest.AddAuthenticator(t, ctx, webauthn.AuthenticatorTransportInternal)

	// 1. Password only: alice has no factor yet.
	p.act("#signin-form button")
	if !p.visible("#passkey-section") {
		t.Fatal("signed in, but the page shows no passkey section (is WEBAUTHN in availables?)")
	}
	p.wantRows()

	// 2. Register a passkey on the first authenticator.
	p.setValue("#passkey-name", "Laptop")
	p.act("#passkey-form button")
	rows := p.wantRows("Laptop")
	first := rows[0].ID
	if rows[0].LastUsed != "never" {
		t.Fatalf("a new passkey shows last used %q", rows[0].LastUsed)
	}
	creds := d.listPasskeys(p.token())
	if len(creds) != 1 || creds[0].ID != first || creds[0].Name != "Laptop" {
		t.Fatalf("API lists %+v, page shows %+v", creds, rows)
	}
	wantHeld(t, browsertest.Credentials(t, ctx, laptop), first)
	if s := p.text("#status-WEBAUTHN"); !strings.Contains(s, "verified, 1 passkey") {
		t.Fatalf("status shows %q", s)
	}

	// A second factor needs a session that passed MFA (step-up): this
	// one had only the password, and the page shows the kit's answer.
	p.setValue("#passkey-name", "Too early")
	if msg := p.actFails("#passkey-form button"); !strings.Contains(msg, "(mfa_required)") {
		t.Fatalf("adding a passkey without step-up: error %q", msg)
	}
	p.wantRows("Laptop")
	wantHeld(t, browsertest.Credentials(t, ctx, laptop), first) // the browser was not asked

	// 3. Sign out; sign in with the password, then the passkey.
	p.act("#signout")
	if !p.visible("#signin") || p.visible("#account") {
		t.Fatal("signed out, but the account is still shown")
	}
	p.act("#signin-form button")
	if msg := p.text("#message"); msg != "Signed in with your passkey." {
		t.Fatalf("after the passkey sign-in the page says %q", msg)
	}
	rows = p.wantRows("Laptop")
	if rows[0].LastUsed == "never" {
		t.Fatal("the passkey just used shows last used never")
	}
	creds = d.listPasskeys(p.token())
	if len(creds) != 1 || creds[0].LastUsedAt == nil || creds[0].LastUsedAt.IsZero() {
		t.Fatalf("API after the passkey sign-in: %+v", creds)
	}

	// The same authenticator cannot register twice: the options exclude
	// the credentials the user has, the browser refuses, the page says why.
	p.setValue("#passkey-name", "Laptop again")
	if msg := p.actFails("#passkey-form button"); !strings.Contains(msg, "(InvalidStateError)") {
		t.Fatalf("registering the same authenticator again: error %q", msg)
	}
	p.wantRows("Laptop")
	wantHeld(t, browsertest.Credentials(t, ctx, laptop), first)

	// 4. A second passkey, on a security key (Chrome allows one internal
	// authenticator per tab). The laptop is left untouched (no presence),
	// so the browser uses the key rather than the laptop answering that
	// it holds an excluded credential.
	key := browsertest.AddAuthenticator(t, ctx, webauthn.AuthenticatorTransportUsb)
	browsertest.SetPresence(t, ctx, laptop, false)
	p.setValue("#passkey-name", "Security key")
	p.act("#passkey-form button")
	rows = p.wantRows("Laptop", "Security key")
	second := rows[1].ID
	if second == first {
		t.Fatal("both passkeys have one ID")
	}
	wantHeld(t, browsertest.Credentials(t, ctx, key), second)
	if creds = d.listPasskeys(p.token()); len(creds) != 2 || creds[1].ID != second || creds[1].Name != "Security key" {
		t.Fatalf("API lists %+v", creds)
	}

	// 5. Remove the first.
	p.act(fmt.Sprintf(`#passkeys button[data-id=%q]`, first))
	rows = p.wantRows("Security key")
	if rows[0].ID != second {
		t.Fatalf("the wrong passkey is left: %+v", rows)
	}
	if creds = d.listPasskeys(p.token()); len(creds) != 1 || creds[0].ID != second {
		t.Fatalf("API after removing the first: %+v", creds)
	}
	if msg := p.text("#message"); !strings.Contains(msg, "Laptop") || !strings.Contains(msg, "removed") {
		t.Fatalf("after removing, the page says %q", msg)
	}

	// 6. The laptop is gone; the security key still signs alice in.
	browsertest.RemoveAuthenticator(t, ctx, laptop)
	p.act("#signout")
	p.act("#signin-form button")
	if msg := p.text("#message"); msg != "Signed in with your passkey." {
		t.Fatalf("signing in with the second passkey: the page says %q", msg)
	}
	if rows = p.wantRows("Security key"); rows[0].LastUsed == "never" {
		t.Fatal("the second passkey shows last used never after signing in with it")
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Save(t, "passkey-journey.png", png)
}

// startPasskeyDemo starts the demo, on a SQLite file as by default, on
// 127.0.0.1 at a free port, with -addr naming that port: the demo's
// default relying party is then localhost with the origin
// http://localhost:<port>, where the test opens the page.
func startPasskeyDemo(t *testing.T) (*demo, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	o, err := parseFlags([]string{"-db", filepath.Join(t.TempDir(), "demo.db"), "-addr", ln.Addr().String()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	a, err := newApp(o, out)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	d := &demo{t: t, srv: srv, out: out, app: a}
	t.Cleanup(d.stop)
	return d, port
}

// apiPasskey is one entry of GET /oauth/users/mfa/webauthn.
type apiPasskey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
}

func (d *demo) listPasskeys(token string) []apiPasskey {
	d.t.Helper()
	status, body := d.call("GET", "/oauth/users/mfa/webauthn", token, "")
	var out struct {
		Credentials []apiPasskey `json:"credentials"`
	}
	if err := json.Unmarshal(body, &out); status != 200 || err != nil {
		d.t.Fatalf("GET /oauth/users/mfa/webauthn: %d %s (%v)", status, body, err)
	}
	for _, c := range out.Credentials {
		if c.CreatedAt.IsZero() || c.ID == "" {
			d.t.Fatalf("API lists a passkey without ID or creation time: %s", body)
		}
	}
	return out.Credentials
}

// wantHeld checks that a virtual authenticator holds exactly the
// credential with the base64url ID id.
func wantHeld(t *testing.T, creds []*webauthn.Credential, id string) {
	t.Helper()
	if len(creds) != 1 || base64.RawURLEncoding.EncodeToString(creds[0].CredentialID) != id {
		var ids []string
		for _, c := range creds {
			ids = append(ids, base64.RawURLEncoding.EncodeToString(c.CredentialID))
		}
		t.Fatalf("the authenticator holds %v, want only %s", ids, id)
	}
}

// passkeyPage drives the demo page through its ready markers: <main>
// counts finished actions in data-seq and says data-outcome; nothing
// sleeps.
type passkeyPage struct {
	t   *testing.T
	ctx context.Context
}

func (p *passkeyPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v (page error: %q)", what, err, p.errorText())
	}
}

func (p *passkeyPage) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func (p *passkeyPage) errorText() string {
	v, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.getElementById("error") || {}).textContent || ""`))
	return v
}

// open loads url and waits until the page has its configuration.
func (p *passkeyPage) open(url string) {
	p.t.Helper()
	p.do("open "+url, chromedp.Navigate(url),
		chromedp.Poll[chromedp.Void](`document.getElementById("app").dataset.config !== "loading"`))
	if c := p.eval(`document.getElementById("app").dataset.config`); c != "ready" {
		p.t.Fatalf("%s: configuration %s", url, c)
	}
}

func (p *passkeyPage) visible(sel string) bool {
	p.t.Helper()
	return p.eval(fmt.Sprintf(`String((() => { const e = document.querySelector(%q); return e !== null && e.checkVisibility(); })())`, sel)) == "true"
}

func (p *passkeyPage) text(sel string) string {
	p.t.Helper()
	return p.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

func (p *passkeyPage) setValue(sel, value string) {
	p.t.Helper()
	p.do("type into "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// token is the page's access token, to check the page's work through the
// API.
func (p *passkeyPage) token() string {
	p.t.Helper()
	tok := p.eval(`state.token || ""`)
	if tok == "" {
		p.t.Fatal("the page holds no access token")
	}
	return tok
}

// click clicks sel and waits until the action it starts has finished;
// it returns the outcome and the error shown.
func (p *passkeyPage) click(sel string) (outcome, errText string) {
	p.t.Helper()
	seq := p.eval(`document.getElementById("app").dataset.seq`)
	p.do("click "+sel, chromedp.Click(chromedp.CSS(sel)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(
			`document.getElementById("app").dataset.seq !== %q && document.getElementById("app").dataset.busy === "false"`, seq)))
	return p.eval(`document.getElementById("app").dataset.outcome`), p.errorText()
}

// act clicks sel and fails the test if the action shows an error.
func (p *passkeyPage) act(sel string) {
	p.t.Helper()
	if outcome, errText := p.click(sel); outcome != "ok" || errText != "" {
		p.t.Fatalf("click %s: outcome %s, error shown %q", sel, outcome, errText)
	}
}

// actFails clicks sel and returns the error the page shows; it fails the
// test if there is none.
func (p *passkeyPage) actFails(sel string) string {
	p.t.Helper()
	outcome, errText := p.click(sel)
	if outcome != "error" || errText == "" {
		p.t.Fatalf("click %s: outcome %s, error shown %q; want an error", sel, outcome, errText)
	}
	return errText
}

// pageRow is one row of the page's passkey table.
type pageRow struct {
	ID, Name, Created, LastUsed string
}

// wantRows checks that the page's passkey table lists exactly names, in
// order, and returns its rows.
func (p *passkeyPage) wantRows(names ...string) []pageRow {
	p.t.Helper()
	js := `JSON.stringify({count: document.getElementById("passkeys").dataset.count,
		rows: [...document.querySelectorAll("#passkeys tr")].map((r) => ({
			ID: r.dataset.id, Name: r.cells[0].textContent, Created: r.cells[1].textContent, LastUsed: r.cells[2].textContent}))})`
	var table struct {
		Count string
		Rows  []pageRow
	}
	if err := json.Unmarshal([]byte(p.eval(js)), &table); err != nil {
		p.t.Fatal(err)
	}
	var got []string
	for _, r := range table.Rows {
		got = append(got, r.Name)
	}
	if strings.Join(got, "|") != strings.Join(names, "|") || table.Count != fmt.Sprint(len(names)) {
		p.t.Fatalf("the page lists passkeys %q (data-count %s), want %q", got, table.Count, names)
	}
	for _, r := range table.Rows {
		if r.ID == "" || r.Created == "never" || r.Created == "" {
			p.t.Fatalf("a row without ID or creation time: %+v", r)
		}
	}
	return table.Rows
}

// The passkeys' relying party: localhost at the port of -addr by default,
// -rp-id and -rp-origins override, an empty -rp-id turns passkeys off.
func TestPasskeyFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		origins string // comma-separated; "error" for a refusal
	}{
		{nil, "http://localhost:8080"},
		{[]string{"-addr", ":9000"}, "http://localhost:9000"},
		{[]string{"-addr", "0.0.0.0:9001"}, "http://localhost:9001"},
		{[]string{"-rp-origins", "https://a.example.test, https://b.example.test/", "-rp-id", "example.test"},
			"https://a.example.test,https://b.example.test"},
		{[]string{"-rp-id", ""}, ""},
		{[]string{"-addr", "127.0.0.1:0"}, "error"}, // run listens first and names the port taken
	} {
		o, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		origins, err := o.passkeyOrigins()
		got := strings.Join(origins, ",")
		if err != nil {
			got = "error"
		}
		if got != c.origins {
			t.Errorf("%q: origins %q (%v), want %q", c.args, got, err, c.origins)
		}
	}
}

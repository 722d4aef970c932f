// The demo page: plain JavaScript against the kit's API; no build step.
"use strict";

//
// Ready markers for people's tools and the browser tests: <main> carries
// data-config (loading, ready, failed), data-busy while an action runs, and
// data-seq, counting finished actions, with data-outcome (ok or error) of
// the last one. The passkey table carries data-count.
const state = { token: null, user: null, stateToken: null, publicKey: null, config: null };
const $ = (id) => document.getElementById(id);

function show(id, visible) { $(id).hidden = !visible; }
function say(text) { $("message").textContent = text; $("error").textContent = ""; }
function fail(text) { $("error").textContent = text; $("message").textContent = ""; }

// api calls the kit and turns a problem+json answer into an Error whose
// message is the problem's detail, for the person to read.
async function api(method, path, { body, auth, accept } = {}) {
  const headers = {};
  if (auth === "client") {
    headers.Authorization = "Basic " + btoa(state.config.clientId + ":" + state.config.clientSecret);
  } else if (state.token) {
    headers.Authorization = "Bearer " + state.token;
  }
  if (accept) headers.Accept = accept;
  let payload;
  if (body instanceof URLSearchParams) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const resp = await fetch(path, { method, headers, body: payload });
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json() : null;
  if (!resp.ok) {
    const detail = data && (data.detail || data.title);
    const err = new Error(detail ? `${detail} (${data.code})` : `${resp.status} ${resp.statusText}`);
    err.code = data && data.code;
    throw err;
  }
  return data;
}

// explain turns an error into a sentence for the person: the kit's
// problem detail, or what a browser's WebAuthn refusal means.
function explain(err) {
  const webauthn = {
    NotAllowedError: "The browser or authenticator did not allow it: cancelled, timed out, or this page is not at the passkeys' address.",
    InvalidStateError: "This authenticator already holds a passkey for this account.",
    SecurityError: "The browser refused: open the page at the address the demo's passkeys belong to.",
    AbortError: "The passkey request was cancelled.",
  }[err.name];
  if (webauthn) return `${webauthn} (${err.name})`;
  return err.message || String(err);
}

// passkeysSupported reports whether this browser has WebAuthn with the
// JSON helpers the page uses (Chrome 129+, Firefox 119+, Safari 18.4+).
function passkeysSupported() {
  return typeof PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
}

function requirePasskeys() {
  if (!window.isSecureContext) throw new Error("Passkeys need a secure page: open it at http://localhost:PORT or over HTTPS.");
  if (!passkeysSupported()) throw new Error("This browser cannot use passkeys here (it lacks WebAuthn's JSON helpers); use a current Chrome, Firefox or Safari.");
}

// passkeysHere reports whether this page's origin is one the demo's
// relying party allows.
function passkeysHere() {
  const c = state.config;
  return Boolean(c && c.rpId && (c.rpOrigins || []).includes(location.origin));
}

async function signedIn(token, user) {
  state.token = token;
  state.user = user;
  show("signin", false);
  show("challenge", false);
  show("account", true);
  $("whoami").textContent = user;
  await refresh();
}

async function refresh() {
  const details = await api("GET", "/oauth/users/mfaDetails");
  const list = $("status");
  list.textContent = "";
  for (const factor of details.availables) {
    const item = document.createElement("li");
    const d = details.details[factor];
    item.textContent = `${factor}: ${d ? (d.verified ? "verified" : "pending") : "not set up"}`;
    if (factor === "WEBAUTHN" && d && d.count !== undefined) {
      item.textContent += `, ${d.count} passkey${d.count === 1 ? "" : "s"}`;
    }
    item.id = "status-" + factor;
    list.appendChild(item);
  }
  const passkeys = details.availables.includes("WEBAUTHN");
  show("passkey-section", passkeys);
  if (passkeys) await listPasskeys();
}

// when formats a time from the API, or "never" for a missing or zero one.
function when(t) {
  if (!t || t.startsWith("0001-")) return "never";
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString();
}

async function listPasskeys() {
  const { credentials = [] } = await api("GET", "/oauth/users/mfa/webauthn");
  const body = $("passkeys");
  body.textContent = "";
  for (const c of credentials) {
    const row = document.createElement("tr");
    row.dataset.id = c.id;
    for (const text of [c.name || "(no name)", when(c.createdAt), when(c.lastUsedAt)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    const cell = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "passkey-remove";
    remove.dataset.id = c.id;
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove passkey ${c.name || c.id}`);
    cell.appendChild(remove);
    row.appendChild(cell);
    body.appendChild(row);
  }
  body.dataset.count = String(credentials.length);
  show("passkeys-empty", credentials.length === 0);
}

async function tokenGrant(params) {
  return api("POST", "/oauth/token", { body: new URLSearchParams(params), auth: "client" });
}

// act runs one action of the person's, shows its error, and keeps the
// ready markers on <main> (see the top).
async function act(handler) {
  const main = $("app");
  main.dataset.busy = "true";
  let outcome = "ok";
  try {
    await handler();
  } catch (err) {
    outcome = "error";
    fail(explain(err));
  }
  main.dataset.outcome = outcome;
  main.dataset.busy = "false";
  main.dataset.seq = String(Number(main.dataset.seq) + 1);
}

function on(id, event, handler) {
  $(id).addEventListener(event, (e) => {
    e.preventDefault();
    act(handler);
  });
}

on("signin-form", "submit", async () => {
  const username = $("username").value;
  const answer = await tokenGrant({ grant_type: "password", username, password: $("password").value });
  if (answer.state_token) {
    state.stateToken = answer.state_token.token;
    state.user = username;
    const factor = answer.state_token.mfaType;
    show("signin", false);
    show("challenge", true);
    if (factor === "WEBAUTHN") {
      state.publicKey = answer.state_token.publicKey || answer.publicKey;
      show("challenge-form", false);
      show("passkey-challenge", true);
      say("Password accepted. Now your passkey.");
      await passkeySignIn(); // on failure the button stays, to try again
      return;
    }
    show("passkey-challenge", false);
    show("challenge-form", true);
    $("challenge-label").textContent = factor === "EMAIL" ? "Code from the email we just sent" : "Code from your authenticator app";
    $("challenge-code").focus();
    say("Password accepted. Now the second factor.");
    return;
  }
  await signedIn(answer.access_token, username);
  say("Signed in.");
});

on("challenge-form", "submit", async () => {
  const answer = await tokenGrant({ grant_type: "state_token", state_token: state.stateToken, totp: $("challenge-code").value });
  $("challenge-code").value = "";
  await signedIn(answer.access_token, state.user);
  say("Signed in with your second factor.");
});

// passkeySignIn answers a WEBAUTHN state token: the browser signs the
// kit's challenge with a passkey, and the token endpoint checks it.
async function passkeySignIn() {
  requirePasskeys();
  const options = PublicKeyCredential.parseRequestOptionsFromJSON(state.publicKey);
  const credential = await navigator.credentials.get({ publicKey: options });
  const answer = await tokenGrant({
    grant_type: "state_token", state_token: state.stateToken, mfatype: "WEBAUTHN",
    credential: JSON.stringify(credential.toJSON()),
  });
  state.stateToken = null;
  state.publicKey = null;
  await signedIn(answer.access_token, state.user);
  say("Signed in with your passkey.");
}

on("passkey-signin", "click", passkeySignIn);

on("signout", "click", async () => {
  state.token = null;
  state.stateToken = null;
  state.publicKey = null;
  $("passkeys").textContent = "";
  $("passkeys").dataset.count = "0";
  show("account", false);
  show("challenge", false);
  show("signin", true);
  say("Signed out.");
});

on("passkey-form", "submit", async () => {
  requirePasskeys();
  const name = $("passkey-name").value.trim();
  const { publicKey } = await api("PUT", "/users/mfa/associateWebAuthn?mfatype=WEBAUTHN");
  const options = PublicKeyCredential.parseCreationOptionsFromJSON(publicKey);
  const credential = await navigator.credentials.create({ publicKey: options });
  await api("PUT", "/users/mfa/verifyWebAuthnEnroll", {
    body: { mfatype: "WEBAUTHN", name, credential: credential.toJSON() },
  });
  $("passkey-name").value = "";
  await refresh();
  say(`Passkey “${name}” added.`);
});

$("passkeys").addEventListener("click", (e) => {
  const button = e.target.closest("button.passkey-remove");
  if (!button) return;
  const row = button.closest("tr");
  const name = row ? row.cells[0].textContent : button.dataset.id;
  act(async () => {
    await api("DELETE", "/oauth/users/mfa/webauthn/" + encodeURIComponent(button.dataset.id));
    await refresh();
    say(`Passkey “${name}” removed.`);
  });
});

on("qr-start", "click", async () => {
  const qr = await api("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR", { accept: "application/json" });
  $("qr-image").src = qr.qrCode;
  $("secret").textContent = qr.secret;
  show("qr-panel", true);
  $("qr-code").focus();
  await refresh();
  say("Scan the code, then type the 6 digits your app shows.");
});

on("qr-form", "submit", async () => {
  await api("PUT", "/users/mfa/verifyQRCodeEnroll", { body: { mfatype: "AUTHENTICATOR", totp: $("qr-code").value } });
  $("qr-code").value = "";
  show("qr-panel", false);
  await refresh();
  say("Authenticator app verified.");
});

on("reset-form", "submit", async () => {
  await api("POST", "/users/mfa/resetMyQRCodeEnroll", { body: { mfatype: "AUTHENTICATOR", totp: $("reset-code").value } });
  $("reset-code").value = "";
  await refresh();
  say("Authenticator removed. Set it up again to sign in with it.");
});

on("email-start", "click", async () => {
  await api("PUT", "/oauth/users/mfa/enrollEmail?mfatype=EMAIL");
  show("email-form", true);
  $("email-code").focus();
  await refresh();
  say("We emailed you a code (the demo prints it in its terminal).");
});

on("email-form", "submit", async () => {
  await api("PUT", "/oauth/users/mfa/verifyEmail", { body: { mfatype: "EMAIL", totp: $("email-code").value } });
  $("email-code").value = "";
  show("email-form", false);
  await refresh();
  say("Email codes verified.");
});

// configured takes the demo's configuration: the client to sign in with,
// and the passkeys' relying party, to tell the person where they work.
function configured(c) {
  state.config = c;
  $("rp-id").textContent = c.rpId || "";
  $("rp-origins").textContent = (c.rpOrigins || []).join(" or ");
  if (c.rpId && !passkeysHere() && c.rpOrigins && c.rpOrigins.length > 0) {
    const there = new URL(location.pathname + location.search, c.rpOrigins[0]);
    $("origin-link").href = there.href;
    $("origin-link").textContent = there.href;
    show("origin-note", true);
  }
  document.querySelector("#signin-form button").disabled = false;
  $("app").dataset.config = "ready";
}

fetch("/demo-config.json")
  .then((r) => { if (!r.ok) throw new Error(r.statusText); return r.json(); })
  .then(configured, () => { $("app").dataset.config = "failed"; fail("Could not load the demo configuration."); });

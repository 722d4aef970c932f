// The demo page: plain JavaScript against the kit's API; no build step.
"use strict";

const state = { token: null, user: null, stateToken: null, config: null };
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
    throw new Error(detail ? `${detail} (${data.code})` : `${resp.status} ${resp.statusText}`);
  }
  return data;
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
    item.id = "status-" + factor;
    list.appendChild(item);
  }
}

async function tokenGrant(params) {
  return api("POST", "/oauth/token", { body: new URLSearchParams(params), auth: "client" });
}

function on(id, event, handler) {
  $(id).addEventListener(event, async (e) => {
    e.preventDefault();
    try {
      await handler();
    } catch (err) {
      fail(err.message);
    }
  });
}

on("signin-form", "submit", async () => {
  const username = $("username").value;
  const answer = await tokenGrant({ grant_type: "password", username, password: $("password").value });
  if (answer.state_token) {
    state.stateToken = answer.state_token.token;
    state.user = username;
    const factor = answer.state_token.mfaType;
    $("challenge-label").textContent = factor === "EMAIL" ? "Code from the email we just sent" : "Code from your authenticator app";
    show("signin", false);
    show("challenge", true);
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

on("signout", "click", async () => {
  state.token = null;
  show("account", false);
  show("signin", true);
  say("Signed out.");
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

fetch("/demo-config.json").then((r) => r.json()).then((c) => { state.config = c; }, () => fail("Could not load the demo configuration."));

// The script the kit's JSON answers need, and nothing else: the code form
// of a sign-in, setting up an authenticator and the step-up before the
// export on the account page, and the reset on the admin page. The kit is
// mounted under /mfa; the session cookie authenticates each call, as
// fetch sends it to its own origin.
"use strict";

// call fetches url and returns its JSON; an error answer (problem+json)
// throws an Error carrying the problem's code.
async function call(method, url, body) {
  const init = {method, headers: {"Accept": "application/json"}};
  if (body instanceof URLSearchParams) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  if (resp.ok && resp.redirected) {
    location.assign(resp.url); // the sign-in is done: go where it leads
    return null;
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw Object.assign(new Error(data.detail || data.title || "HTTP " + resp.status), {code: data.code});
  }
  return data;
}

const kit = (method, path, body) => call(method, "/mfa" + path, body);
const $ = (id) => document.getElementById(id);
const code = (id) => ({mfatype: "AUTHENTICATOR", totp: $(id).value.trim()});

function showError(err) {
  const el = $("mfa-error");
  if (el) el.textContent = err ? err.message : "";
}

// on runs fn on the event of element id, if the page has one.
function on(id, event, fn) {
  const el = $(id);
  if (!el) return;
  el.addEventListener(event, (e) => {
    e.preventDefault();
    showError(null);
    fn(el).catch(showError);
  });
}

on("code-form", "submit", (form) => call("POST", form.action, new URLSearchParams(new FormData(form))));

async function showStatus() {
  const st = await kit("GET", "/oauth/users/mfaDetails");
  const enabled = (st.details.AUTHENTICATOR || {}).verified === true;
  $("mfa-status").textContent = enabled
    ? "On: you sign in with your password and a code from your authenticator app."
    : "Off.";
  $("mfa-start").hidden = enabled;
}
if ($("mfa-status")) showStatus().catch(showError);

on("mfa-start", "click", async (button) => {
  const key = await kit("PUT", "/users/mfa/associateQRCode?mfatype=AUTHENTICATOR");
  $("mfa-qr").src = key.qrCode;
  $("mfa-secret").textContent = key.secret;
  $("mfa-enroll").hidden = false;
  button.hidden = true;
  $("mfa-code").focus();
});

on("mfa-enroll-form", "submit", async () => {
  await kit("PUT", "/users/mfa/verifyQRCodeEnroll", code("mfa-code"));
  $("mfa-enroll").hidden = true;
  await showStatus();
});

// The export is behind a step-up: a 401 mfa_required asks for a code,
// and once the kit has checked it the export is fetched again.
async function exportData() {
  try {
    const data = await call("GET", "/account/export");
    $("mfa-verify-form").hidden = true;
    $("export-data").textContent = JSON.stringify(data, null, 2);
    $("export-data").hidden = false;
  } catch (err) {
    if (err.code !== "mfa_required") throw err;
    $("export-data").hidden = true;
    $("mfa-verify-form").hidden = false;
    $("mfa-verify-code").focus();
  }
}
on("export-start", "click", exportData);

on("mfa-verify-form", "submit", async () => {
  await kit("PUT", "/oauth/users/mfa/verify", code("mfa-verify-code"));
  $("mfa-verify-code").value = "";
  await exportData();
});

for (const button of document.querySelectorAll("[data-mfa-reset]")) {
  button.addEventListener("click", () => {
    showError(null);
    kit("PUT", "/users/" + encodeURIComponent(button.dataset.mfaReset) + "/mfa/resetQRCodeEnroll").then(() => {
      button.textContent = "Reset done";
      button.disabled = true;
    }, showError);
  });
}

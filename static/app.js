// qlar console: progressive enhancement only; every form also works without this file.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// Webhook switch: show or hide the URL and Secret Key fields, and say Enabled / Disabled.
function initWebhookSwitch() {
  const toggle = document.getElementById("webhook_enabled");
  const fields = document.getElementById("webhook-fields");
  const state = document.getElementById("webhook-state");
  if (!toggle || !fields || !state) return;
  const sync = () => {
    fields.hidden = !toggle.checked;
    state.textContent = toggle.checked ? "Enabled" : "Disabled";
  };
  toggle.addEventListener("change", sync);
  // Back/forward restores the checkbox without a change event: re-sync once the page is shown.
  window.addEventListener("pageshow", sync);
  sync();
}

// Copy: fetch the key with a CSRF-protected POST, put it on the clipboard, never into the page.
function initCopy() {
  const button = document.getElementById("copy-secret");
  const status = document.getElementById("copy-status");
  if (!button || !status) return;
  button.addEventListener("click", async () => {
    status.textContent = "";
    try {
      const response = await fetch(button.dataset.url, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || "Could not fetch the key.");
      await navigator.clipboard.writeText(data.secret);
      status.textContent = "Copied";
    } catch (err) {
      status.textContent = "Copy failed: " + err.message;
    }
  });
}

// Copy buttons with data-copy="<field id>": put that readonly field's value (a token shown once) on the clipboard.
function initCopyField() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.id + "-status");
    if (!field) return;
    button.addEventListener("click", async () => {
      if (status) status.textContent = "";
      try {
        await navigator.clipboard.writeText(field.value);
        if (status) status.textContent = "Copied";
      } catch (err) {
        field.select();  // no clipboard access (e.g. plain http): leave it selected for Ctrl+C
        if (status) status.textContent = "Copy failed: select the token and copy it yourself.";
      }
    });
  });
}

// Forms with data-confirm ask first; Regenerate Key then marks itself confirmed.
function initConfirmations() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      const confirmed = form.querySelector('input[name="confirmed"]');
      if (confirmed) confirmed.value = "yes";
    });
  });
}

// Grace period countdown.
function initCountdowns() {
  const items = document.querySelectorAll(".countdown[data-expires]");
  if (!items.length) return;
  const tick = () => {
    items.forEach((el) => {
      const left = Math.max(0, Math.floor((Date.parse(el.dataset.expires) - Date.now()) / 1000));
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = left ? `${h ? h + "h " : ""}${m}m ${String(s).padStart(2, "0")}s left` : "expired";
    });
  };
  tick();
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  initWebhookSwitch();
  initCopy();
  initCopyField();
  initConfirmations();
  initCountdowns();
});

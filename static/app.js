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

// Switches with data-state="<id>" (an endpoint's own switch): say Enabled / Disabled as they change.
function initSwitchStates() {
  document.querySelectorAll("[role=switch][data-state]").forEach((toggle) => {
    const state = document.getElementById(toggle.dataset.state);
    if (!state) return;
    const sync = () => { state.textContent = toggle.checked ? "Enabled" : "Disabled"; };
    toggle.addEventListener("change", sync);
    window.addEventListener("pageshow", sync);
  });
}

// Copy: fetch the key with a CSRF-protected POST, put it on the clipboard, never into the page.
function initCopy() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("#copy-secret");
    const status = document.getElementById("copy-status");
    if (!button || !status) return;
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
      const field = document.getElementById("secret-key");  // the key exists now: stop saying it will be created
      if (field && field.dataset.masked) field.value = field.dataset.masked;
      flashStatus(status, "Copied");
    } catch (err) {
      flashStatus(status, "Copy failed: " + err.message);
    }
  });
}

// Copy buttons with data-copy="<element id>": put that field's value (a token shown once) or that element's text
// (a body, a command) on the clipboard; "Copied" clears after a moment.
function flashStatus(status, text) {
  if (!status) return;
  status.textContent = text;
  clearTimeout(status.clearTimer);
  status.clearTimer = setTimeout(() => { status.textContent = ""; }, 2500);
}

function initCopyField() {
  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const source = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.id + "-status");
    if (!source) return;
    button.addEventListener("click", async () => {
      const text = "value" in source ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text);
        flashStatus(status, "Copied");
      } catch (err) {
        if (source.select) source.select();  // no clipboard access (e.g. plain http): leave it selected for Ctrl+C
        else window.getSelection().selectAllChildren(source);
        flashStatus(status, "Copy failed: select it and copy it yourself.");
      }
    });
  });
}

// <time data-local datetime="...Z">: local time and how long ago; the UTC text the server wrote moves to the tooltip.
const UNITS = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

function ago(date, now = Date.now()) {
  const seconds = Math.round((date - now) / 1000);
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") return format.format(Math.trunc(seconds / size), unit);
  }
  return "";
}

function initLocalTimes(root = document) {
  const today = new Date().toDateString();
  root.querySelectorAll("time[data-local]").forEach((el) => {
    const at = new Date(el.dateTime);
    if (Number.isNaN(at.getTime())) return;
    if (!el.title) el.title = el.textContent.trim();
    const clock = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const local = at.toDateString() === today ? clock
      : at.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" }) + " " + clock;
    el.textContent = `${local} (${ago(at)})`;
  });
}

// <input type="checkbox" data-auto-refresh="N">: reload every N seconds while checked (remembered per page),
// not while the tab is hidden or while a field is being edited.
function initAutoRefresh() {
  document.querySelectorAll("input[data-auto-refresh]").forEach((box) => {
    const key = "qlar-refresh:" + location.pathname;
    const seconds = Math.max(2, Number(box.dataset.autoRefresh) || 10);
    let timer = null;
    const busy = () => document.hidden || (document.activeElement && document.activeElement.matches("input:not([type=checkbox]), textarea, select"));
    const schedule = () => {
      clearTimeout(timer);
      if (!box.checked) return;
      timer = setTimeout(() => (busy() ? schedule() : location.reload()), seconds * 1000);
    };
    box.checked = localStorage.getItem(key) === "on";
    box.addEventListener("change", () => {
      localStorage.setItem(key, box.checked ? "on" : "off");
      schedule();
    });
    schedule();
  });
}

// Forms with data-confirm ask first (in-place forms ask in submitInPlace); a page without JS confirms on the server.
function initConfirmations() {
  document.querySelectorAll("form[data-confirm]:not([data-inplace])").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// Messages like the server's flashes, at the top of the page.
function showMessage(category, text) {
  const box = document.getElementById("messages");
  if (!box) return;
  const p = document.createElement("p");
  p.className = "flash flash-" + category;
  p.setAttribute("role", category === "error" ? "alert" : "status");
  p.textContent = text;
  box.replaceChildren(p);
}

// Forms with data-inplace="id …" post with fetch and swap only those parts of the page (and the messages) for the
// server's fresh ones, so unsaved edits elsewhere on the page stay. Without JS they post and the page reloads.
async function submitInPlace(form, submitter) {
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const confirmed = form.querySelector('input[name="confirmed"]');
  if (confirmed) confirmed.value = "yes";
  const parts = form.dataset.inplace.split(/\s+/).map((id) => document.getElementById(id)).filter(Boolean);
  const buttons = [...document.querySelectorAll(`[form="${form.id}"], #${form.id} [type=submit]`)];
  buttons.forEach((b) => { b.disabled = true; });
  parts.forEach((part) => part.setAttribute("aria-busy", "true"));
  try {
    const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const messages = page.getElementById("messages");
    if (messages && messages.children.length) document.getElementById("messages").replaceWith(messages);
    else if (!response.ok) throw new Error(`the server answered ${response.status}`);
    parts.forEach((part) => {
      const fresh = page.getElementById(part.id);
      if (fresh) {
        part.replaceWith(fresh);
        initLocalTimes(fresh);
      }
    });
    document.dispatchEvent(new Event("qlar:swapped"));
  } catch (err) {
    showMessage("error", `That did not go through (${err.message}); nothing on this page was lost. Try again.`);
  } finally {
    if (confirmed) confirmed.value = "";
    buttons.forEach((b) => { b.disabled = false; });
    parts.forEach((part) => part.setAttribute("aria-busy", "false"));
  }
}

function initInPlaceForms() {
  document.querySelectorAll("form[data-inplace]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const dialog = form.closest("dialog");
      if (dialog) dialog.close();
      submitInPlace(form, event.submitter);
    });
  });
}

// Buttons with data-opens="<dialog id>" open that dialog instead of submitting (its form confirms);
// data-closes closes the dialog it sits in.
function initDialogs() {
  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-opens]");
    const closer = event.target.closest("[data-closes]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.opens);
      if (!dialog || !dialog.showModal) return;  // no <dialog> support: the server's confirm page asks
      event.preventDefault();
      dialog.returnFocus = opener;
      dialog.showModal();
    } else if (closer) {
      closer.closest("dialog").close();
    }
  });
  document.querySelectorAll("dialog").forEach((dialog) => {
    dialog.addEventListener("close", () => {
      const back = dialog.returnFocus && document.getElementById(dialog.returnFocus.id || "");
      (back || document.querySelector(`[data-opens="${dialog.id}"]`) || document.body).focus();
    });
  });
}

// The Escalation form: warn before leaving with unsaved edits (links, the agent switcher, reload, closing).
function formState(form) {
  const data = new FormData(form);
  data.delete("csrf_token");
  data.delete("version");
  return new URLSearchParams(data).toString();
}

function initUnsavedWarning() {
  const form = document.querySelector("form[data-draft]");
  if (!form) return;
  let saved = form.hasAttribute("data-dirty") ? null : formState(form);
  let submitting = false;
  form.addEventListener("submit", () => { submitting = true; });
  window.addEventListener("pageshow", () => { submitting = false; });
  window.addEventListener("beforeunload", (event) => {
    if (submitting || formState(form) === saved) return;
    event.preventDefault();
    event.returnValue = "";  // older browsers need it set to show the prompt
  });
}

// The https rule as you type (the server checks again on Save), and a scorecard marked out of date when the URL
// in the form is not the one it checked.
const URL_ERRORS = {
  scheme: "Webhook URL must start with https://",
  host: "Webhook URL must include a host, such as https://your-domain.com/path",
  space: "Webhook URL must not contain spaces",
};

function urlProblem(value) {
  const url = value.trim();
  if (!url) return "";
  if (!/^https:\/\//i.test(url)) return "https://".startsWith(url.toLowerCase()) ? "" : URL_ERRORS.scheme;
  if (/\s/.test(value.trim())) return URL_ERRORS.space;
  try {
    if (!new URL(url).hostname) return URL_ERRORS.host;
  } catch (err) {
    return url.length > "https://".length ? URL_ERRORS.host : "";
  }
  return "";
}

function initUrlCheck() {
  const input = document.getElementById("webhook_url");
  const error = document.getElementById("webhook-url-error");
  if (!input || !error) return;
  const sync = (edited) => {
    const problem = urlProblem(input.value);
    if (edited || problem) error.dataset.live = "yes";  // the server's message stays until the URL is edited
    if (error.dataset.live === "yes") error.textContent = problem;
    if (error.textContent) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    const check = document.getElementById("receiver-check");
    const stale = document.getElementById("check-stale");
    if (check && stale && check.dataset.checkedUrl) stale.hidden = input.value.trim() === check.dataset.checkedUrl;
  };
  input.addEventListener("input", () => sync(true));
  document.addEventListener("qlar:swapped", () => sync(false));
}

// After a refused form the field in error has the focus (a screen reader then reads its message), not the page.
function initFocusOnError() {
  const field = document.querySelector("main form [aria-invalid='true']");
  if (field) field.focus();
}

// Grace period countdown (parts of the page swapped in place are picked up on the next tick).
function initCountdowns() {
  const tick = () => {
    document.querySelectorAll(".countdown[data-expires]").forEach((el) => {
      const left = Math.max(0, Math.floor((Date.parse(el.dataset.expires) - Date.now()) / 1000));
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = left ? `${h ? h + "h " : ""}${m}m ${String(s).padStart(2, "0")}s left` : "expired";
    });
  };
  tick();
  setInterval(tick, 1000);
}

// Simulation (Escalations): while the job runs, poll its JSON and update the progress and the live region in place.
// The Simulation form's Scenario JSON shows only for "Custom JSON", which starts from the example chosen last.
function initScenarioField() {
  const choice = document.querySelector("select[data-scenario-choice]");
  const box = document.querySelector("[data-scenario-json]");
  if (!choice || !box) return;
  const text = box.querySelector("textarea");
  let example = (choice.querySelector("option[data-json]") || { dataset: {} }).dataset.json || "";
  const sync = () => {
    const option = choice.selectedOptions[0];
    if (option && option.dataset.json) example = option.dataset.json;
    const custom = choice.value === choice.dataset.scenarioChoice;
    if (custom && !text.value.trim()) text.value = example;
    box.hidden = !custom;
  };
  choice.addEventListener("change", sync);
  sync();
}

function initSimulation() {
  const box = document.querySelector(".sim-state[data-poll]");
  if (!box || box.dataset.unfinished !== "yes") return;
  const set = (name, text) => box.querySelectorAll(`[data-sim="${name}"]`).forEach((el) => { el.textContent = text; });
  const reload = box.querySelector(".sim-reload");
  if (reload) reload.hidden = true;
  const poll = async () => {
    let state;
    try {
      const response = await fetch(box.dataset.poll, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      state = await response.json();
    } catch (err) {
      set("statusText", `Progress unavailable (${err.message}): reload the page.`);
      if (reload) reload.hidden = false;
      return;
    }
    set("flowsDone", state.flowsDone);
    ["events", "delivered", "failed"].forEach((name) => set(name, state.progress[name]));
    const bar = box.querySelector("progress");
    if (bar) bar.value = state.flowsDone;
    const summary = box.querySelector('[data-sim="summary"]');
    if (state.summaryLines && summary) {
      summary.textContent = state.summaryLines.join("\n");
      summary.hidden = false;
    }
    const status = box.querySelector('[data-sim="statusText"]');
    if (status && status.textContent !== state.statusText) status.textContent = state.statusText;
    if (state.unfinished) setTimeout(poll, 1000);
    else set("phase", "Last");
  };
  setTimeout(poll, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  initWebhookSwitch();
  initSwitchStates();
  initCopy();
  initCopyField();
  initConfirmations();
  initInPlaceForms();
  initDialogs();
  initUnsavedWarning();
  initUrlCheck();
  initFocusOnError();
  initCountdowns();
  initLocalTimes();
  initAutoRefresh();
  initSimulation();
  initScenarioField();
});

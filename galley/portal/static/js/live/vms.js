// The "Operations" panel of a virtual machine: its power state (the instance view, polled),
// start / stop / restart / deallocate, the serial log (the URL retrieveBootDiagnosticsData signs,
// read without a token), and a run-command box (RunShellScript) showing stdout and stderr.

import { canDo } from "../pages/permissions.js";
import { reachable } from "./page_upload.js";

const POLL_MS = 2000;
const HIDDEN_MS = 1000;
const ACTIONS = [
  ["start", "Start"], ["powerOff", "Stop"], ["restart", "Restart"], ["deallocate", "Deallocate"],
];

function statusOf(view, prefix) {
  return ((view && view.statuses) || []).find((s) => String(s.code || "").startsWith(prefix));
}

// "Enable succeeded: \n[stdout]\n…\n[stderr]\n…\n" (Azure's RunShellScript message) in parts.
export function splitOutput(message) {
  const text = String(message || "");
  const out = text.indexOf("[stdout]\n"), err = text.indexOf("\n[stderr]\n");
  if (out < 0 || err < 0) return { summary: text.trim(), stdout: "", stderr: "" };
  return { summary: text.slice(0, out).trim(), stdout: text.slice(out + 9, err),
           stderr: text.slice(err + 10).replace(/\n$/, "") };
}

export function renderVm(container, resource, ctx) {
  const { ui, arm } = ctx;
  const { el } = ui;
  const id = resource.id;
  const power = el("dd", { "data-field": "powerState" }, "—");
  const provisioning = el("dd", {}, "—");
  const feedback = el("div", { "aria-live": "polite" });
  const skipShutdown = ui.field("skipShutdown", "Stop without the guest's shutdown (cut the power)", { kind: "checkbox" });
  const buttons = ACTIONS.map(([action, label]) => ui.button(label, () => power_(action, label)));
  const serial = el("pre", { class: "serial-log", tabindex: 0, role: "log", "aria-label": "Serial log" });
  const serialNote = el("p", { class: "muted" }, "");
  const script = ui.field("script", "Shell script (RunShellScript)", { kind: "textarea", value: "uname -a" });
  const runButton = el("button", { type: "submit", class: "btn primary" }, "Run command");
  const runStatus = el("p", { role: "status" }, "");
  const stdout = el("pre", { class: "run-output", tabindex: 0, role: "region", "aria-label": "Standard output" });
  const stderr = el("pre", { class: "run-output", tabindex: 0, role: "region", "aria-label": "Standard error" });
  const runForm = el("form", { class: "form run-command" }, script.row, el("div", { class: "actions" }, runButton));
  ui.clear(container,
    el("h2", {}, "Power"),
    el("dl", { class: "props" }, el("dt", {}, "Power state"), power, el("dt", {}, "Provisioning"), provisioning),
    el("div", { class: "actions" }, buttons), skipShutdown.row, feedback,
    el("h2", {}, "Run command"), runForm, runStatus,
    el("h3", {}, "stdout"), stdout, el("h3", {}, "stderr"), stderr,
    el("h2", {}, "Serial log"), serialNote, serial);

  // What the user's roles do not allow is not offered (the API would refuse it anyway).
  canDo(ctx, id, "Microsoft.Compute/virtualMachines/start/action").then((may) => {
    if (may === false) { buttons.forEach((b) => { b.hidden = true; }); skipShutdown.row.hidden = true; }
  });
  canDo(ctx, id, "Microsoft.Compute/virtualMachines/runCommand/action").then((may) => {
    if (may === false) runForm.hidden = true;
  });

  let wake = null;
  let serialUrl = null;

  async function power_(action, label) {
    ui.clear(feedback);
    const query = action === "powerOff" && skipShutdown.value() ? { skipShutdown: "true" } : {};
    try {
      const response = await arm.raw("POST", arm.urlFor(`${id}/${action.toLowerCase()}`, query));
      if (!response.ok) throw await armError(response);
      ui.toast(`${label}: requested.`);
    } catch (error) {
      ui.clear(feedback, ui.errorBox(error));
    }
    if (wake) wake();
  }

  async function armError(response) {
    const body = await response.json().catch(() => ({}));
    const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    error.code = body.error && body.error.code;
    return error;
  }

  async function refreshSerial() {
    try {
      if (!serialUrl) {
        const data = await arm.post(`${id}/retrieveBootDiagnosticsData`);
        serialUrl = data && data.serialConsoleLogBlobUri ? reachable(data.serialConsoleLogBlobUri) : null;
      }
      if (!serialUrl) { serialNote.textContent = "This VM has no serial log."; return; }
      const response = await fetch(serialUrl);
      if (response.status === 403) { serialUrl = null; return; } // expired: a new URL next time
      const text = await response.text();
      if (text !== serial.textContent) {
        const atBottom = serial.scrollTop + serial.clientHeight >= serial.scrollHeight - 4;
        serial.textContent = text;
        if (atBottom) serial.scrollTop = serial.scrollHeight;
      }
      serialNote.textContent = text ? `${text.length.toLocaleString()} characters` : "Nothing written yet.";
    } catch (error) {
      serialNote.textContent = `The serial log could not be read: ${error.message}`;
    }
  }

  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    script.clearError();
    const lines = script.value().split("\n");
    runButton.disabled = true;
    runStatus.textContent = "Running…";
    stdout.textContent = ""; stderr.textContent = "";
    try {
      const response = await arm.raw("POST", arm.urlFor(`${id}/runCommand`), {
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ commandId: "RunShellScript", script: lines }) });
      if (!response.ok) throw await armError(response);
      const result = await runResult(response);
      const status = (result.value || [])[0] || {};
      const parts = splitOutput(status.message);
      stdout.textContent = parts.stdout;
      stderr.textContent = parts.stderr;
      runStatus.textContent = `${status.displayStatus || "Done"}${status.exitCode === undefined || status.exitCode === null ? "" : ` — exit code ${status.exitCode}`}. ${parts.summary}`;
    } catch (error) {
      runStatus.textContent = "";
      if (!ui.showError(error, { script }, feedback)) runStatus.textContent = "The command could not run.";
    } finally {
      runButton.disabled = false;
    }
  });

  // A 202's Location (operationresults) answers 202 until the command ends, then its output.
  async function runResult(response) {
    if (response.status === 200) return response.json();
    const location = response.headers.get("Location");
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const polled = await arm.raw("GET", location);
      if (polled.status === 202) continue;
      if (!polled.ok) throw await armError(polled);
      return polled.json();
    }
  }

  (async () => {
    let turn = 0;
    while (container.isConnected) {
      if (container.closest("[hidden]")) { // another tab is shown: look again later
        await new Promise((resolve) => { wake = resolve; setTimeout(resolve, HIDDEN_MS); });
        continue;
      }
      try {
        const view = await arm.get(`${id}/instanceView`);
        const state = statusOf(view, "PowerState/");
        power.textContent = state ? state.displayStatus || state.code.slice(11) : "unknown";
        const prov = statusOf(view, "ProvisioningState/");
        provisioning.textContent = prov ? prov.displayStatus || prov.code.slice(18) : "—";
      } catch (error) {
        if (!container.isConnected) return;
        ui.clear(feedback, ui.errorBox(error));
      }
      if (turn++ % 2 === 0) await refreshSerial();
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, POLL_MS); });
    }
  })();
}

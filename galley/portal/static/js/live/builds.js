// The "Runs" panel of an image template: the last run's state, sub-state and message, Run and
// Cancel, and customization.log followed live. The log comes from Galley's
// GET {template}/logs?offset=N, which answers the bytes from N on and says in its headers how
// long the log is now (X-Galley-Log-Size) — a shorter log than we hold means a new run began.

import { canDo } from "../pages/permissions.js";

const ACTIVE = ["Running", "Canceling"];
const FAST_MS = 1000;
const IDLE_MS = 4000;
const HIDDEN_MS = 1000; // how often a panel on a hidden tab looks whether it is shown

export function renderBuilds(container, resource, ctx) {
  const { ui, arm } = ctx;
  const { el } = ui;
  const id = resource.id;
  const state = el("dd", { "data-field": "runState" }, "—");
  const subState = el("dd", { "data-field": "runSubState" }, "—");
  const message = el("dd", { "data-field": "message" }, "—");
  const started = el("dd", {}, "—");
  const ended = el("dd", {}, "—");
  const runButton = ui.button("Run", () => act("run"), { kind: "primary" });
  const cancelButton = ui.button("Cancel run", () => act("cancel"));
  const feedback = el("div", { "aria-live": "polite" });
  const logId = ui.uid("log");
  const log = el("pre", { id: logId, class: "build-log", tabindex: 0, role: "log", "aria-label": "customization.log" });
  const following = el("p", { class: "muted", role: "status" }, "");
  ui.clear(container,
    el("h2", {}, "Last run"),
    el("dl", { class: "props run-status" },
      el("dt", {}, "State"), state, el("dt", {}, "Sub-state"), subState, el("dt", {}, "Message"), message,
      el("dt", {}, "Started"), started, el("dt", {}, "Ended"), ended),
    el("div", { class: "actions" }, runButton, cancelButton),
    feedback,
    el("h2", {}, "customization.log"), following, log);

  // Buttons the user's roles do not allow are not offered (the API would refuse them anyway).
  canDo(ctx, id, "Microsoft.VirtualMachineImages/imageTemplates/run/action").then((may) => {
    if (may === false) { runButton.hidden = true; cancelButton.hidden = true; }
  });

  let offset = 0;
  let wake = null;
  const decoder = new TextDecoder();

  async function act(action) {
    ui.clear(feedback);
    try {
      await arm.post(`${id}/${action}`);
      ui.toast(action === "run" ? "Run started." : "Cancel requested.");
    } catch (error) {
      ui.clear(feedback, ui.errorBox(error));
    }
    if (wake) wake();
  }

  function showStatus(template) {
    const last = (template.properties || {}).lastRunStatus || {};
    state.textContent = last.runState || "Never run";
    subState.textContent = last.runSubState || "—";
    message.textContent = last.message || "—";
    started.textContent = ui.formatTime(last.startTime) || "—";
    ended.textContent = ui.formatTime(last.endTime) || "—";
    const active = ACTIVE.includes(last.runState);
    runButton.disabled = active;
    cancelButton.disabled = last.runState !== "Running";
    return active;
  }

  async function readLog() {
    const response = await arm.raw("GET", arm.urlFor(`${id}/logs`, { offset }));
    if (response.status === 404) { following.textContent = "No run has written a log yet."; return; }
    if (!response.ok) { following.textContent = `The log could not be read (HTTP ${response.status}).`; return; }
    const size = Number(response.headers.get("X-Galley-Log-Size") || 0);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (size < offset) { // a new run started its log over
      offset = 0; log.textContent = "";
      return readLog();
    }
    if (bytes.length) {
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(decoder.decode(bytes, { stream: true }));
      offset += bytes.length;
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    following.textContent = `${offset.toLocaleString()} bytes`;
  }

  (async () => {
    while (container.isConnected) {
      if (container.closest("[hidden]")) { // another tab is shown: look again later
        await new Promise((resolve) => { wake = resolve; setTimeout(resolve, HIDDEN_MS); });
        continue;
      }
      let active = false;
      try {
        active = showStatus(await arm.get(id));
        await readLog();
      } catch (error) {
        if (!container.isConnected) return;
        ui.clear(feedback, ui.errorBox(error));
      }
      following.textContent += active ? " — following the running build" : "";
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, active ? FAST_MS : IDLE_MS); });
    }
  })();
}

// #/upload: a local disk image (raw, VHD or qcow2) into a new managed disk, from the browser.
//
// Raw and fixed-VHD files go the Azure way (page_upload.js): the disk is created with
// createOption Upload, a Write SAS is granted (beginGetAccess), the data goes out as Put Page
// requests and access is revoked (endGetAccess), which makes the pages the disk's content. A
// raw file gets a VHD footer computed here. Dropped connections are resumed from Get Page Ranges;
// choosing the same file again for a disk still waiting for its upload resumes it as well.
// Dynamic VHD and qcow2 cannot be written as pages (their layout is not the disk's), so they go
// in one request to Galley's own `PUT {disk}/upload?format=…`, which converts them on the server;
// a dropped connection there means sending the file again (done automatically, from the start).

import * as auth from "../auth.js";
import { inspect } from "./disk_image.js";
import { PageUploader, UploadFailed } from "./page_upload.js";

const UPLOAD_STATES = ["ReadyToUpload", "ActiveUpload"];
const SAS_SECONDS = 24 * 3600;
const WHOLE_FILE_RETRIES = [1000, 3000, 9000];

// Leaving the page mid-upload asks first (choosing the same file again later resumes it).
function keepPage(event) {
  event.preventDefault();
  event.returnValue = "";
}

export async function renderUpload(container, ctx) {
  const { ui, arm } = ctx;
  const { el } = ui;
  const subscriptions = await arm.list("/subscriptions");
  const fields = {
    subscription: ui.field("subscription", "Subscription", {
      kind: "select", required: true,
      options: subscriptions.map((s) => [s.subscriptionId, s.displayName || s.subscriptionId]) }),
    group: ui.field("resourceGroupName", "Resource group", { kind: "select", required: true }),
    name: ui.field("diskName", "Disk name", { required: true, placeholder: "my-disk" }),
    osType: ui.field("osType", "Operating system", { kind: "select", options: [["", "None (data disk)"], "Linux", "Windows"] }),
  };
  const fileId = ui.uid("file");
  const fileInput = el("input", { id: fileId, type: "file", "aria-describedby": `${fileId}-hint`,
                                  accept: ".vhd,.qcow2,.raw,.img,.bin,application/octet-stream" });
  const fileError = el("p", { class: "field-error", role: "alert", hidden: true });
  const chosen = el("p", { id: `${fileId}-hint`, class: "hint" }, "Or drop a raw, VHD or qcow2 file here.");
  const dropZone = el("div", { class: "field drop-zone" },
    el("label", { for: fileId }, "Disk image file"), fileInput, chosen, fileError);
  const progressId = ui.uid("progress");
  const progress = el("progress", { id: progressId, max: 100, value: 0 });
  const progressLabel = el("label", { for: progressId }, "Upload progress");
  const progressText = el("p", { class: "upload-figures", "aria-live": "polite" }, "");
  const status = el("p", { role: "status", class: "upload-status" }, "");
  const outcome = el("div", {});
  const progressBox = el("div", { class: "upload-progress", hidden: true }, progressLabel, progress, progressText, status);
  const submit = el("button", { type: "submit", class: "btn primary" }, "Upload");
  const form = el("form", { class: "form upload-form", novalidate: true },
    Object.values(fields).map((f) => f.row),
    dropZone,
    el("div", { class: "actions" }, submit));
  ui.clear(container, el("h1", {}, "Upload a disk"),
    el("p", {}, "The file becomes a new managed disk. Raw and fixed VHD files are sent in 4 MiB pages " +
      "(all-zero pages are skipped) and resume after a dropped connection; dynamic VHD and qcow2 files " +
      "are converted by the server."),
    form, progressBox, outcome);

  let file = null;
  const choose = (picked) => {
    file = picked || null;
    chosen.textContent = file ? `${file.name} (${ui.formatBytes(file.size)})` : "Or drop a raw, VHD or qcow2 file here.";
    fileError.hidden = true;
    if (file && !fields.name.value()) fields.name.input.value = file.name.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9_.-]/g, "-");
  };
  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    dropZone.addEventListener(type, (event) => { event.preventDefault(); dropZone.classList.add("dragging"); });
  }
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    choose(event.dataTransfer.files[0]);
  });

  const loadGroups = async () => {
    const groups = await arm.list(`/subscriptions/${fields.subscription.value()}/resourcegroups`);
    ui.clear(fields.group.input, groups.map((g) => el("option", { value: g.name, dataset: { location: g.location } }, g.name)));
  };
  fields.subscription.input.addEventListener("change", () => loadGroups().catch((e) => ui.clear(outcome, ui.errorBox(e))));
  if (subscriptions.length) await loadGroups();

  const show = (done, total, sent) => {
    progress.max = total;
    progress.value = done;
    const percent = total ? Math.floor((100 * done) / total) : 0;
    progressText.textContent = `${percent}% — ${ui.formatBytes(done)} of ${ui.formatBytes(total)} done` +
      (sent === undefined ? "" : `, ${ui.formatBytes(sent)} of data sent`);
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Object.values(fields).forEach((f) => f.clearError());
    ui.clear(outcome);
    if (!fields.name.value()) { fields.name.setError("Give the disk a name."); fields.name.input.focus(); return; }
    if (!file) { fileError.textContent = "Choose a disk image file."; fileError.hidden = false; fileInput.focus(); return; }
    submit.disabled = true;
    window.addEventListener("beforeunload", keepPage);
    progressBox.hidden = false;
    show(0, 1);
    try {
      const disk = await uploadDisk(ctx, {
        subscription: fields.subscription.value(), group: fields.group.value(),
        location: fields.group.input.selectedOptions[0]?.dataset.location,
        name: fields.name.value(), osType: fields.osType.value(), file,
      }, { show, say: (text) => { status.textContent = text; } });
      status.textContent = `Done: disk ${disk.name} is ${disk.properties.diskState}.`;
      ui.clear(outcome, el("p", { class: "alert success" }, "Uploaded. ",
        el("a", { href: `#/resource${disk.id}` }, `Open disk ${disk.name}`), "."));
    } catch (error) {
      status.textContent = "The upload stopped.";
      ui.showError(error, { diskName: fields.name }, outcome); // next to the name, else below the form
    } finally {
      submit.disabled = false;
      window.removeEventListener("beforeunload", keepPage);
    }
  });
}

// Create (or find, to resume) the disk, send `file` into it; resolves to the disk at the end.
async function uploadDisk({ arm }, { subscription, group, location, name, osType, file }, { show, say }) {
  say("Reading the file…");
  const image = await inspect(file);
  const id = `/subscriptions/${subscription}/resourceGroups/${group}/providers/Microsoft.Compute/disks/${name}`;
  const existing = await arm.get(id).catch((error) => { if (error.status === 404) return null; throw error; });
  let resuming = false;
  if (existing) {
    const props = existing.properties || {};
    resuming = UPLOAD_STATES.includes(props.diskState) && props.creationData?.uploadSizeBytes === image.blobSize;
    if (!resuming) {
      const error = new Error(`A disk named '${name}' already exists (diskState ${props.diskState}); choose another name.`);
      error.target = "diskName";
      throw error;
    }
  } else {
    say(`Creating disk ${name} (${image.format}, ${image.virtualSize} bytes)…`);
    const created = await arm.put(id, { location, properties: {
      creationData: { createOption: "Upload", uploadSizeBytes: image.blobSize }, ...(osType ? { osType } : {}) } });
    await arm.wait(created);
  }
  if (image.pageUpload) await sendPages(arm, id, file, image, resuming, { show, say });
  else await sendWhole(arm, id, file, image, { show, say });
  return arm.get(id);
}

async function sendPages(arm, id, file, image, resuming, { show, say }) {
  const grant = await arm.post(`${id}/beginGetAccess`, { access: "Write", durationInSeconds: SAS_SECONDS });
  const uploader = new PageUploader(grant.accessSAS, file, image.footer, {
    onProgress: (u) => show(u.done, u.size, u.sent), onStatus: say });
  let written = null;
  if (resuming) {
    say("Resuming an earlier upload: asking which pages the disk already holds…");
    written = await uploader.pageRanges();
  }
  say(`Sending ${image.format} data in 4 MiB pages…`);
  show(0, uploader.size, 0);
  await uploader.run(written);
  say("Finishing: revoking access (the pages become the disk's content)…");
  await arm.wait(await arm.post(`${id}/endGetAccess`));
}

// Galley's PUT …/upload: the whole file in one request, converted by the server.
async function sendWhole(arm, id, file, image, { show, say }) {
  for (let attempt = 0; ; attempt++) {
    say(`Sending the ${image.format} file (the server converts it)…`);
    try {
      await putFile(arm.urlFor(`${id}/upload`, { format: image.format }), file, show);
      return;
    } catch (error) {
      if (error instanceof UploadFailed || attempt >= WHOLE_FILE_RETRIES.length) throw error;
      say(`Connection lost; sending the file again in ${WHOLE_FILE_RETRIES[attempt] / 1000} s…`);
      await new Promise((resolve) => setTimeout(resolve, WHOLE_FILE_RETRIES[attempt]));
    }
  }
}

// XMLHttpRequest, not fetch: only it reports how much of a request body has gone out.
function putFile(url, file, show) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    request.setRequestHeader("Authorization", `Bearer ${auth.accessToken()}`);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.upload.addEventListener("progress", (event) => show(event.loaded, event.total || file.size));
    request.addEventListener("load", () => {
      if (request.status < 300) { show(file.size, file.size); resolve(); return; }
      let message = `HTTP ${request.status}`;
      try { message = JSON.parse(request.responseText).error.message; } catch { /* not an ARM error body */ }
      (request.status >= 500 ? reject(new Error(message)) : reject(new UploadFailed(message)));
    });
    request.addEventListener("error", () => reject(new Error("the connection was lost")));
    request.send(file);
  });
}

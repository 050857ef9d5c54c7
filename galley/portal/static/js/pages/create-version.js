// Create an image version (seed 004): basics (region, version number), its source (disk or
// snapshot with data disks, managed image, another version, VM, or a VHD blob), replication
// (default replica count and storage type, target regions), then Review + create.
import { el, clear, heading, field, loading, button, uid } from "../ui.js";
import { breadcrumbs, parseId, resourceLink } from "./common.js";
import { tagsField, regionsOf, fieldset, reviewAndCreate, required, prune, endOfDay } from "./forms.js";

const SOURCE_KINDS = [
  ["disk", "Disks and snapshots", ["Microsoft.Compute/disks", "Microsoft.Compute/snapshots"]],
  ["image", "Managed image", ["Microsoft.Compute/images"]],
  ["version", "Image version", ["Microsoft.Compute/galleries/images/versions"]],
  ["vm", "Virtual machine", ["Microsoft.Compute/virtualMachines"]],
  ["vhd", "VHD in a storage account", ["Microsoft.Storage/storageAccounts"]],
];
const STORAGE_TYPES = ["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"];

async function candidates(arm, subscriptionId) {
  const types = SOURCE_KINDS.flatMap(([, , t]) => t).map((t) => `'${t}'`).join(", ");
  const body = await arm.post("/providers/Microsoft.ResourceGraph/resources", {
    query: `Resources | where type in~ (${types}) | project id, name, type, location, resourceGroup | order by name asc`,
    subscriptions: [subscriptionId], options: { $top: 1000 } });
  return body.data || [];
}

function optionsFor(found, kind, location) {
  const types = SOURCE_KINDS.find(([k]) => k === kind)[2].map((t) => t.toLowerCase());
  return found.filter((r) => types.includes(r.type.toLowerCase()) && (!location || kind === "version" || r.location === location))
    .map((r) => [r.id, `${kind === "version" ? `${r.id.split("/").slice(-5, -4)[0]}/${r.id.split("/").slice(-3, -2)[0]}/` : ""}${r.name} (${r.resourceGroup}, ${r.location})`]);
}

function fillSelect(select, options, empty) {
  clear(select, el("option", { value: "" }, options.length ? "Choose…" : empty), options.map(([v, t]) => el("option", { value: v }, t)));
}

export async function renderCreateVersion(container, ctx, definitionId) {
  clear(container, breadcrumbs(definitionId), heading("Create an image version"), loading());
  const parsed = parseId(definitionId);
  const [definition, regions, found] = await Promise.all([
    ctx.arm.get(definitionId), regionsOf(ctx.arm, parsed.subscription), candidates(ctx.arm, parsed.subscription)]);

  const f = {
    galleryImageVersionName: field("galleryImageVersionName", "Version number", { required: true, placeholder: "1.0.0",
      hint: "MajorVersion.MinorVersion.Patch, integers.", aliases: ["name"] }),
    location: field("location", "Region", { kind: "select", options: regions, value: definition.location, aliases: [] }),
    sourceKind: field("sourceKind", "Source type", { kind: "select", options: SOURCE_KINDS.map(([k, t]) => [k, t]) }),
    source: field("source", "OS disk source", { kind: "select", options: [],
      aliases: ["properties.storageProfile", "properties.storageProfile.source", "properties.storageProfile.osDiskImage"] }),
    container: field("container", "Container", { value: "vhds" }),
    blob: field("blob", "VHD blob", { kind: "select", options: [], aliases: ["properties.storageProfile.osDiskImage.source.uri"] }),
    excludeFromLatest: field("excludeFromLatest", "Exclude from latest", { kind: "checkbox", aliases: ["properties.publishingProfile.excludeFromLatest"] }),
    endOfLifeDate: field("endOfLifeDate", "End of life date", { kind: "date", aliases: ["properties.publishingProfile.endOfLifeDate"] }),
    replicaCount: field("replicaCount", "Default replica count", { kind: "number", value: "1", min: 1, aliases: ["properties.publishingProfile.replicaCount"] }),
    storageAccountType: field("storageAccountType", "Default storage type", { kind: "select", options: STORAGE_TYPES, aliases: ["properties.publishingProfile.storageAccountType"] }),
    targetRegions: { row: el("div", { class: "rows", id: uid("regions") }), input: null, name: "targetRegions",
      aliases: ["properties.publishingProfile.targetRegions", "properties.publishingProfile"], value: () => "x" },
    tags: tagsField(),
  };
  const regionError = el("p", { class: "field-error", role: "alert", hidden: true });
  Object.assign(f.targetRegions, {
    setError(message) { regionError.textContent = message; regionError.hidden = false; },
    clearError() { regionError.hidden = true; regionError.textContent = ""; },
  });

  // Data disks (disk and snapshot sources): a LUN and a disk or snapshot each.
  const dataDisks = el("div", { class: "rows" });
  const dataRows = [];
  const addDataDisk = () => {
    const lun = field(`lun${dataRows.length}`, "LUN", { kind: "number", value: String(dataRows.length), min: 0 });
    const disk = field(`dataDisk${dataRows.length}`, "Data disk", { kind: "select", options: optionsFor(found, "disk", f.location.value()) });
    const entry = { lun, disk };
    const row = el("div", { class: "row" }, lun.row, disk.row, button("Remove", () => { row.remove(); dataRows.splice(dataRows.indexOf(entry), 1); }, { label: "Remove data disk" }));
    dataRows.push(entry);
    dataDisks.append(row);
  };
  const addDataButton = button("Add a data disk", addDataDisk);

  // Target regions: the source region first, then any others, each with its replica count and storage type.
  const regionRows = [];
  const addRegion = (name) => {
    const i = regionRows.length;
    const region = field(`targetRegion${i}`, `Target region ${i + 1}`, { kind: "select", options: regions, value: name || "" });
    const count = field(`regionReplicas${i}`, "Replicas", { kind: "number", value: "1", min: 1 });
    const type = field(`regionStorage${i}`, "Storage type", { kind: "select", options: STORAGE_TYPES });
    const entry = { region, count, type };
    const remove = i === 0 ? null : button("Remove", () => { row.remove(); regionRows.splice(regionRows.indexOf(entry), 1); }, { label: `Remove target region ${i + 1}` });
    const row = el("div", { class: "row" }, region.row, count.row, type.row, remove);
    regionRows.push(entry);
    f.targetRegions.row.append(row);
  };
  addRegion(definition.location);
  f.location.input.addEventListener("change", () => { regionRows[0].region.input.value = f.location.value(); refreshSources(); });

  const vhdRows = [f.container.row, f.blob.row];
  const listBlobs = async () => {
    const account = parseId(f.source.value()).name;
    if (!account) return;
    try {
      const body = await ctx.arm.get(`/blob/${account}/${encodeURIComponent(f.container.value())}`);
      fillSelect(f.blob.input, (body.value || []).map((b) => [b.azureUrl, `${b.name} (${b.size} bytes)`]), "No blobs in this container");
    } catch (error) { f.blob.setError(error.message); }
  };
  f.container.input.addEventListener("change", listBlobs);

  function refreshSources() {
    const kind = f.sourceKind.value();
    fillSelect(f.source.input, optionsFor(found, kind, f.location.value()), "Nothing of this kind in this region");
    f.source.row.querySelector("label").textContent = kind === "vhd" ? "Storage account" : kind === "disk" ? "OS disk or snapshot" : "Source";
    vhdRows.forEach((r) => { r.hidden = kind !== "vhd"; });
    dataDisks.hidden = kind !== "disk";
    addDataButton.hidden = kind !== "disk";
  }
  f.sourceKind.input.addEventListener("change", refreshSources);
  f.source.input.addEventListener("change", () => {
    const chosen = found.find((r) => r.id === f.source.value());
    if (chosen && f.sourceKind.value() !== "version" && chosen.location !== f.location.value()) {
      f.location.input.value = chosen.location;
      regionRows[0].region.input.value = chosen.location;
    }
    if (f.sourceKind.value() === "vhd") listBlobs();
  });
  refreshSources();

  const storageProfile = () => {
    const kind = f.sourceKind.value();
    const id = f.source.value();
    if (!id) throw { target: "source", message: "Choose a source." };
    if (kind === "disk") {
      return { osDiskImage: { source: { id } }, dataDiskImages: dataRows.filter((d) => d.disk.value()).map((d) => ({ lun: Number(d.lun.value()), source: { id: d.disk.value() } })) };
    }
    if (kind === "vm") return { source: { virtualMachineId: id } };
    if (kind === "vhd") {
      if (!f.blob.value()) throw { target: "blob", message: "Choose a VHD blob." };
      return { osDiskImage: { source: { uri: f.blob.value(), storageAccountId: id } } };
    }
    return { source: { id } };
  };

  const form = el("form", { class: "form", "aria-label": "Create an image version", novalidate: true },
    fieldset("Basics", el("p", {}, "Image definition: ", resourceLink(definitionId, definition.name)), f.location.row, f.galleryImageVersionName.row),
    fieldset("Version details", f.sourceKind.row, f.source.row, ...vhdRows, dataDisks, el("div", { class: "actions" }, addDataButton),
      f.excludeFromLatest.row, f.endOfLifeDate.row),
    fieldset("Replication", f.replicaCount.row, f.storageAccountType.row, el("h2", { class: "subhead" }, "Target regions"), f.targetRegions.row, regionError,
      el("div", { class: "actions" }, button("Add a target region", () => addRegion()))),
    fieldset("Encryption", el("p", { class: "muted" }, "Replicas are kept in Galley's region stores, encrypted at rest with the platform's keys; customer-managed disk encryption sets are not offered.")),
    fieldset("Tags", f.tags.row));
  const review = reviewAndCreate(ctx, {
    form, fields: f,
    build() {
      required(f, ["galleryImageVersionName"]);
      const targetRegions = regionRows.filter((r) => r.region.value()).map((r) => ({
        name: r.region.value(), regionalReplicaCount: Number(r.count.value() || 1), storageAccountType: r.type.value() }));
      const publishingProfile = {
        targetRegions, replicaCount: Number(f.replicaCount.value() || 1), storageAccountType: f.storageAccountType.value(),
        excludeFromLatest: f.excludeFromLatest.value(), endOfLifeDate: endOfDay(f.endOfLifeDate.value()),
      };
      const body = prune({ location: f.location.value(), tags: f.tags.tags(), properties: { publishingProfile, storageProfile: storageProfile() } });
      body.properties.publishingProfile.excludeFromLatest = publishingProfile.excludeFromLatest;
      const name = f.galleryImageVersionName.value();
      return {
        name, method: "PUT", path: `${definitionId}/versions/${name}`, body,
        summary: [["Image definition", definition.name], ["Version", name], ["Region", f.location.value()],
          ["Source", f.source.input.selectedOptions[0] ? f.source.input.selectedOptions[0].textContent : ""],
          ["Target regions", targetRegions.map((r) => `${r.name} ×${r.regionalReplicaCount} (${r.storageAccountType})`).join(", ")],
          ["Exclude from latest", publishingProfile.excludeFromLatest ? "Yes" : "No"], ["End of life", publishingProfile.endOfLifeDate || ""]],
      };
    },
  });
  clear(container, breadcrumbs(definitionId), heading("Create an image version"), form, review);
}

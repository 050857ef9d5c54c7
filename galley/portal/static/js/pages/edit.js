// Change what may be changed (seed 001's "what may be updated"), as a PATCH: every resource's
// tags; a gallery's description; a definition's description, end of life, EULA and recommended
// sizes; a version's exclude-from-latest, end of life, replica count and target regions.
import { el, clear, heading, field, loading, button } from "../ui.js";
import { TYPES, breadcrumbs, parseId, sameType } from "./common.js";
import { tagsField, regionsOf, fieldset, reviewAndCreate, prune, endOfDay, dateValue } from "./forms.js";

const STORAGE_TYPES = ["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"];

function galleryFields(resource) {
  const p = resource.properties || {};
  const description = field("description", "Description", { value: p.description || "", aliases: ["properties.description"] });
  return { fields: { description }, rows: [description.row], properties: () => ({ description: description.value() }) };
}

function definitionFields(resource) {
  const p = resource.properties || {};
  const r = p.recommended || {};
  const f = {
    description: field("description", "Description", { value: p.description || "", aliases: ["properties.description"] }),
    endOfLifeDate: field("endOfLifeDate", "End of life date", { kind: "date", value: dateValue(p.endOfLifeDate), aliases: ["properties.endOfLifeDate"] }),
    eula: field("eula", "EULA", { value: p.eula || "", aliases: ["properties.eula"] }),
    vcpuMin: field("vcpuMin", "Recommended vCPUs (min)", { kind: "number", value: (r.vCPUs || {}).min ?? "", aliases: ["properties.recommended.vCPUs"] }),
    vcpuMax: field("vcpuMax", "Recommended vCPUs (max)", { kind: "number", value: (r.vCPUs || {}).max ?? "" }),
    memoryMin: field("memoryMin", "Recommended memory GiB (min)", { kind: "number", value: (r.memory || {}).min ?? "", aliases: ["properties.recommended.memory", "properties.recommended"] }),
    memoryMax: field("memoryMax", "Recommended memory GiB (max)", { kind: "number", value: (r.memory || {}).max ?? "" }),
  };
  const number = (x) => (x.value() === "" ? undefined : Number(x.value()));
  return {
    fields: f,
    rows: [f.description.row, f.endOfLifeDate.row, f.eula.row, el("div", { class: "grid2" }, f.vcpuMin.row, f.vcpuMax.row, f.memoryMin.row, f.memoryMax.row)],
    properties: () => ({
      description: f.description.value(), endOfLifeDate: endOfDay(f.endOfLifeDate.value()), eula: f.eula.value(),
      recommended: { vCPUs: { min: number(f.vcpuMin), max: number(f.vcpuMax) }, memory: { min: number(f.memoryMin), max: number(f.memoryMax) } },
    }),
  };
}

function versionFields(resource, regions) {
  const profile = (resource.properties || {}).publishingProfile || {};
  const f = {
    excludeFromLatest: field("excludeFromLatest", "Exclude from latest", { kind: "checkbox", value: profile.excludeFromLatest, aliases: ["properties.publishingProfile.excludeFromLatest"] }),
    endOfLifeDate: field("endOfLifeDate", "End of life date", { kind: "date", value: dateValue(profile.endOfLifeDate), aliases: ["properties.publishingProfile.endOfLifeDate"] }),
    replicaCount: field("replicaCount", "Default replica count", { kind: "number", value: String(profile.replicaCount || 1), aliases: ["properties.publishingProfile.replicaCount"] }),
  };
  const list = el("div", { class: "rows" });
  const regionError = el("p", { class: "field-error", role: "alert", hidden: true });
  f.targetRegions = { row: list, input: null, name: "targetRegions", aliases: ["properties.publishingProfile.targetRegions", "properties.publishingProfile"], value: () => "x",
    setError(m) { regionError.textContent = m; regionError.hidden = false; }, clearError() { regionError.hidden = true; } };
  const rows = [];
  const add = (target = {}) => {
    const i = rows.length;
    const region = field(`targetRegion${i}`, `Target region ${i + 1}`, { kind: "select", options: regions, value: target.name ? target.name.toLowerCase().replace(/\s/g, "") : "" });
    const count = field(`regionReplicas${i}`, "Replicas", { kind: "number", value: String(target.regionalReplicaCount || 1), min: 1 });
    const type = field(`regionStorage${i}`, "Storage type", { kind: "select", options: STORAGE_TYPES, value: target.storageAccountType || "Standard_LRS" });
    const entry = { region, count, type };
    const row = el("div", { class: "row" }, region.row, count.row, type.row,
      button("Remove", () => { row.remove(); rows.splice(rows.indexOf(entry), 1); }, { label: `Remove target region ${i + 1}` }));
    rows.push(entry);
    list.append(row);
  };
  (profile.targetRegions || []).forEach(add);
  return {
    fields: f,
    rows: [f.excludeFromLatest.row, f.endOfLifeDate.row, f.replicaCount.row, el("h2", { class: "subhead" }, "Target regions"), list, regionError,
      el("div", { class: "actions" }, button("Add a target region", () => add()))],
    properties: () => ({ publishingProfile: {
      excludeFromLatest: f.excludeFromLatest.value(), endOfLifeDate: endOfDay(f.endOfLifeDate.value()),
      replicaCount: Number(f.replicaCount.value() || 1),
      targetRegions: rows.filter((r) => r.region.value()).map((r) => ({ name: r.region.value(), regionalReplicaCount: Number(r.count.value() || 1), storageAccountType: r.type.value() })),
    } }),
  };
}

export async function renderEdit(container, ctx, id) {
  const parsed = parseId(id);
  clear(container, breadcrumbs(parsed.id), heading(`Edit ${parsed.name}`), loading());
  const resource = await ctx.arm.get(parsed.id);
  let specific = { fields: {}, rows: [], properties: () => ({}) };
  if (sameType(parsed.type, TYPES.gallery)) specific = galleryFields(resource);
  else if (sameType(parsed.type, TYPES.definition)) specific = definitionFields(resource);
  else if (sameType(parsed.type, TYPES.version)) specific = versionFields(resource, await regionsOf(ctx.arm, parsed.subscription));
  const tags = tagsField(resource.tags);
  const fields = { ...specific.fields, tags };
  const form = el("form", { class: "form", "aria-label": `Edit ${parsed.name}`, novalidate: true },
    specific.rows.length ? fieldset("Properties", specific.rows) : null, fieldset("Tags", tags.row));
  const review = reviewAndCreate(ctx, {
    form, fields, verb: "Save",
    build() {
      const properties = prune(specific.properties());
      if (sameType(parsed.type, TYPES.version)) properties.publishingProfile.excludeFromLatest = specific.fields.excludeFromLatest.value();
      const body = { tags: tags.tags() };
      if (Object.keys(properties).length) body.properties = properties;
      return {
        name: parsed.name, method: "PATCH", path: parsed.id, body,
        summary: [["Tags", Object.entries(body.tags).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
          ...Object.entries(properties).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v])],
      };
    },
  });
  clear(container, breadcrumbs(parsed.id), heading(`Edit ${parsed.name}`), form, review);
}

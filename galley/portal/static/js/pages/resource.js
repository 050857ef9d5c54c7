// A resource's page, for every type: properties, tags, what it contains, its JSON (like Azure's
// "JSON View"), its activity log, its access control, and the panels other modules registered
// for its type (registry.js). Versions show their replication live; definitions their latest.
import { el, clear, heading, properties, loading, errorBox, tabs, button, confirmDialog, toast, formatTime } from "../ui.js";
import { panelsFor } from "../registry.js";
import { TYPES, parseId, parentId, sameType, breadcrumbs, typeLabel, resourceLink, resourceHash, stateBadge, KINDS } from "./common.js";
import { pagedList } from "./list.js";
import { graphPages, resourceColumns } from "./browse.js";
import { renderActivity } from "./activity.js";
import { renderAccess, renderSharing } from "./access.js";
import { renderReplication, renderLatest } from "./replication.js";
import { permissions } from "./permissions.js";
import { renderBlobBrowser } from "./storage.js";

export async function loadResource(arm, id) {
  const { type } = parseId(id);
  if (sameType(type, TYPES.version)) return arm.get(id, { $expand: "ReplicationStatus" });
  return arm.get(id);
}

/** Properties worth a row: the resource's own fields, then `properties` flattened one level down. */
function propertyRows(resource, parsed) {
  const rows = [
    ["Name", resource.name || resource.displayName || parsed.name],
    ["Type", typeLabel(parsed.type)],
    ["Id", resource.id || parsed.id],
    ["Subscription", parsed.subscription],
    ["Resource group", parsed.group && parsed.type !== TYPES.group ? parsed.group : null],
    ["Location", resource.location],
    ["SKU", resource.sku ? resource.sku.name || JSON.stringify(resource.sku) : null],
    ["State", resource.state],
  ];
  const flatten = (object, prefix, depth) => {
    for (const [key, value] of Object.entries(object || {})) {
      if (key === "replicationStatus") continue;
      const label = prefix ? `${prefix}.${key}` : key;
      if (value && typeof value === "object" && !Array.isArray(value) && depth < 2) flatten(value, label, depth + 1);
      else rows.push([label, typeof value === "object" ? JSON.stringify(value) : String(value)]);
    }
  };
  flatten(resource.properties, "", 0);
  return rows;
}

function tagList(tags) {
  const entries = Object.entries(tags || {});
  return entries.length ? el("ul", { class: "tags", "aria-label": "Tags" }, entries.map(([k, v]) => el("li", { class: "tag" }, `${k}: ${v}`)))
    : el("p", { class: "muted" }, "No tags.");
}

function versionColumns() {
  return [
    { title: "Version", value: (v) => resourceLink(v.id, v.name) },
    { title: "State", value: (v) => stateBadge(v.properties.provisioningState) },
    { title: "Regions", value: (v) => ((v.properties.publishingProfile || {}).targetRegions || []).map((r) => r.name).join(", ") },
    { title: "Excluded from latest", value: (v) => ((v.properties.publishingProfile || {}).excludeFromLatest ? "Yes" : "No") },
    { title: "End of life", value: (v) => formatTime((v.properties.publishingProfile || {}).endOfLifeDate) },
  ];
}

function definitionColumns() {
  return [
    { title: "Definition", value: (d) => resourceLink(d.id, d.name) },
    { title: "Publisher / offer / SKU", value: (d) => { const i = d.properties.identifier || {}; return [i.publisher, i.offer, i.sku].join(" / "); } },
    { title: "OS", value: (d) => `${d.properties.osType || ""} ${d.properties.osState || ""}` },
    { title: "Generation", value: (d) => d.properties.hyperVGeneration || "" },
    { title: "State", value: (d) => stateBadge(d.properties.provisioningState) },
  ];
}

const STATES = ["Succeeded", "Creating", "Updating", "Failed", "Deleting", "Migrating"].map((s) => [s, s]);
const byState = { label: "State", options: STATES, test: (r, v) => String((r.properties || {}).provisioningState).toLowerCase() === v.toLowerCase() };

/** What the resource contains, listed on its overview. */
function children(ctx, id, parsed, early) {
  const arm = ctx.arm;
  if (sameType(parsed.type, TYPES.subscription)) {
    return [heading("Resource groups", 2), pagedList({
      first: () => arm.page(`${id}/resourcegroups`), label: "resource groups",
      columns: [{ title: "Resource group", value: (g) => resourceLink(g.id, g.name) }, { title: "Location", value: (g) => g.location }],
    }), heading("Browse", 2), el("ul", { class: "cards" }, Object.entries(KINDS).map(([key, kind]) =>
      el("li", {}, el("a", { class: "card", href: `#/browse/${key}` }, kind.label))))];
  }
  if (sameType(parsed.type, TYPES.group)) {
    const query = `Resources | where subscriptionId =~ '${parsed.subscription}' | where resourceGroup =~ '${parsed.group.replace(/'/g, "''")}' | project id, name, type, location, resourceGroup, subscriptionId, properties | order by id asc`;
    return [heading("Resources", 2), pagedList({ first: graphPages(arm, query), columns: resourceColumns(), label: "resources" })];
  }
  if (sameType(parsed.type, TYPES.gallery)) {
    const osTypes = { label: "OS type", options: [["Linux", "Linux"], ["Windows", "Windows"]], test: (d, v) => String(d.properties.osType).toLowerCase() === v.toLowerCase() };
    return [heading("Image definitions", 2), pagedList({
      first: () => early || arm.page(`${id}/images`), columns: definitionColumns(), label: "image definitions",
      text: (d) => { const i = d.properties.identifier || {}; return [d.name, i.publisher, i.offer, i.sku].join(" "); },
      filters: [osTypes, byState],
    })];
  }
  if (sameType(parsed.type, TYPES.definition)) {
    return [heading("Versions", 2), pagedList({ first: () => early || arm.page(`${id}/versions`), columns: versionColumns(), label: "versions", filters: [byState] })];
  }
  if (sameType(parsed.type, "Microsoft.Storage/storageAccounts")) return [renderBlobBrowser(ctx, { id, name: parsed.name })];
  return [];
}

/** The resources that go (or block the delete) with `id`, named in the confirmation. */
async function dependents(ctx, id, parsed) {
  try {
    if (sameType(parsed.type, TYPES.gallery)) {
      const found = await ctx.arm.list(`${id}/images`);
      return { what: "image definitions", names: found.map((d) => d.name) };
    }
    if (sameType(parsed.type, TYPES.definition)) {
      const page = await ctx.arm.page(`${id}/versions`);
      return { what: "image versions", names: page.items.map((v) => v.name), more: Boolean(page.next) };
    }
    if (sameType(parsed.type, TYPES.group)) {
      const body = await ctx.arm.post("/providers/Microsoft.ResourceGraph/resources", {
        query: `Resources | where subscriptionId =~ '${parsed.subscription}' | where resourceGroup =~ '${parsed.group.replace(/'/g, "''")}' | project name`,
        options: { $top: 1000 } });
      return { what: "resources", names: (body.data || []).map((r) => r.name) };
    }
  } catch { /* the delete itself will tell */ }
  return { what: "", names: [] };
}

async function deleteResource(ctx, resource, parsed) {
  const { what, names, more } = await dependents(ctx, parsed.id, parsed);
  const listed = names.slice(0, 20);
  const body = names.length
    ? [el("p", {}, `${parsed.name} contains ${names.length}${more ? "+" : ""} ${what}:`),
      el("ul", { class: "dependents" }, listed.map((n) => el("li", {}, n)), names.length > listed.length ? el("li", {}, `… and ${names.length - listed.length}${more ? "+" : ""} more`) : null),
      el("p", {}, `They must be deleted first, or the delete will be refused.`)]
    : [el("p", {}, `Nothing depends on ${parsed.name}.`)];
  const ok = await confirmDialog({ title: `Delete ${typeLabel(parsed.type).toLowerCase()} ${parsed.name}?`, body, confirm: "Delete" });
  if (!ok) return;
  try {
    const answer = await ctx.arm.delete(parsed.id);
    if (answer) await ctx.arm.wait(answer);
    toast(`Deleted ${parsed.name}.`);
    ctx.navigate(resourceHash(parentId(parsed.id)) || "#/");
  } catch (error) {
    toast(`${error.code}: ${error.message}`, "error");
  }
}

const UPDATABLE = [TYPES.gallery, TYPES.definition, TYPES.version, "Microsoft.Compute/disks", "Microsoft.Compute/snapshots",
  "Microsoft.Compute/images", "Microsoft.Storage/storageAccounts", "Microsoft.VirtualMachineImages/imageTemplates", "Microsoft.Compute/virtualMachines", TYPES.group];

/** The action buttons, drawn at once; those the user may not use are taken away when that is known. */
function actionBar(ctx, resource, parsed) {
  const bar = el("div", { class: "actions", role: "toolbar", "aria-label": "Actions", "aria-busy": "true" });
  const creates = [];
  if (sameType(parsed.type, TYPES.group)) creates.push(el("a", { class: "btn", href: `#/create/gallery${parsed.id}` }, "Create a gallery here"));
  if (sameType(parsed.type, TYPES.gallery)) creates.push(el("a", { class: "btn primary", href: `#/create/definition${parsed.id}` }, "Add an image definition"));
  if (sameType(parsed.type, TYPES.definition)) creates.push(el("a", { class: "btn primary", href: `#/create/version${parsed.id}` }, "Create a version"));
  const edit = UPDATABLE.some((t) => sameType(t, parsed.type)) ? el("a", { class: "btn", href: `#/edit${parsed.id}` }, "Edit") : null;
  const remove = sameType(parsed.type, TYPES.subscription) ? null : button("Delete", () => deleteResource(ctx, resource, parsed), { kind: "danger" });
  bar.append(...creates, edit || "", remove || "");
  permissions(ctx, parsed.id, [`${parsed.type}/write`, `${parsed.type}/delete`]).then(([writable, deletable]) => {
    if (writable === false) { creates.forEach((a) => a.remove()); if (edit) edit.remove(); }
    if (deletable === false && remove) remove.remove();
    bar.setAttribute("aria-busy", "false");
  });
  return bar;
}

export async function renderResource(container, ctx, id) {
  const parsed = parseId(id);
  clear(container, breadcrumbs(parsed.id), heading(parsed.name || id), loading());
  // A gallery's or definition's list is asked for with the resource itself, not after it.
  const child = sameType(parsed.type, TYPES.gallery) ? "images" : sameType(parsed.type, TYPES.definition) ? "versions" : null;
  const early = child ? ctx.arm.page(`${parsed.id}/${child}`) : null;
  if (early) early.catch(() => {}); // shown by the list when it is drawn
  let resource;
  try {
    resource = await loadResource(ctx.arm, parsed.id);
  } catch (error) {
    clear(container, breadcrumbs(parsed.id), heading(parsed.name || id), errorBox(error));
    return;
  }
  const title = resource.displayName && sameType(parsed.type, TYPES.subscription) ? resource.displayName : resource.name || parsed.name;
  const overview = (panel) => {
    const props = el("div", {}, properties(propertyRows(resource, parsed)));
    const parts = [heading("Properties", 2), props, heading("Tags", 2), tagList(resource.tags)];
    if (sameType(parsed.type, TYPES.version)) {
      parts.unshift(renderReplication(ctx, resource, (newer) => clear(props, properties(propertyRows(newer, parsed)))));
    }
    if (sameType(parsed.type, TYPES.definition)) parts.unshift(renderLatest(ctx, parsed.id, early));
    clear(panel, parts, children(ctx, parsed.id, parsed, early));
  };
  const entries = [
    { title: "Overview", render: overview },
    { title: "JSON View", render: (panel) => clear(panel, heading("JSON View", 2), el("pre", { class: "json", tabindex: 0, "aria-label": "Resource JSON" }, JSON.stringify(resource, null, 2))) },
    { title: "Activity log", render: (panel) => renderActivity(panel, ctx, parsed) },
    { title: "Access control (IAM)", render: (panel) => renderAccess(panel, ctx, parsed.id) },
  ];
  if (sameType(parsed.type, TYPES.gallery)) entries.push({ title: "Sharing", render: (panel) => renderSharing(panel, ctx, resource) });
  for (const panel of panelsFor(parsed.type)) {
    entries.push({ title: panel.title, render: (node) => panel.render(node, resource, ctx) });
  }
  const actions = actionBar(ctx, resource, parsed);
  clear(container, breadcrumbs(parsed.id), heading(title), el("p", { class: "subtitle" }, typeLabel(parsed.type)), actions, tabs(entries));
}

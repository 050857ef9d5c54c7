// A version's replication, region by region, refreshed every 1.5 s while any region is still at
// work (no reload); and a definition's `latest` version (Galley's versions/latest).
import { el, clear, heading, table } from "../ui.js";
import { parentId, resourceLink, stateBadge } from "./common.js";

const POLL_MS = 1500;
const DONE = new Set(["completed", "failed"]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function regionRows(version) {
  const status = (version.properties.replicationStatus || {}).summary || [];
  const targets = new Map(((version.properties.publishingProfile || {}).targetRegions || []).map((t) => [t.name.toLowerCase().replace(/\s/g, ""), t]));
  return status.map((s) => ({ ...s, target: targets.get(String(s.region).toLowerCase().replace(/\s/g, "")) || {} }));
}

function progressCell(row) {
  const percent = Number(row.progress || 0);
  return el("span", { class: "progress" },
    el("progress", { max: 100, value: percent, "aria-label": `${row.region} replication progress` }), ` ${percent}%`);
}

function drawRegions(node, version) {
  const rows = regionRows(version);
  const aggregated = (version.properties.replicationStatus || {}).aggregatedState || "";
  clear(node,
    el("p", {}, "Replication: ", el("span", { class: "aggregated" }, stateBadge(aggregated)), "  Provisioning: ", stateBadge(version.properties.provisioningState)),
    table([
      { title: "Region", value: (r) => r.region },
      { title: "State", value: (r) => stateBadge(r.state) },
      { title: "Progress", value: progressCell },
      { title: "Replicas", value: (r) => String(r.target.regionalReplicaCount || (version.properties.publishingProfile || {}).replicaCount || "") },
      { title: "Storage", value: (r) => r.target.storageAccountType || "" },
      { title: "Details", value: (r) => r.details || "" },
    ], rows, { caption: "Replication by region", empty: "No target regions." }));
  return rows.length > 0 && rows.every((r) => DONE.has(String(r.state).toLowerCase()))
    && !/^(creating|updating)$/i.test(version.properties.provisioningState);
}

async function latestName(arm, definitionId) {
  try { return (await arm.get(`${definitionId}/versions/latest`)).name; } catch { return null; }
}

function drawLatest(node, definitionId, name) {
  clear(node, "Latest version: ", name ? resourceLink(`${definitionId}/versions/${name}`, name) : el("span", { class: "muted" }, "none yet"));
}

/** `after`: asked once it settles (the versions list first: finding latest reads every version). */
export function renderLatest(ctx, definitionId, after = null) {
  const node = el("p", { class: "latest", role: "status" }, "Latest version: …");
  Promise.resolve(after).catch(() => {}).then(() => latestName(ctx.arm, definitionId)).then((name) => drawLatest(node, definitionId, name));
  return node;
}

/** `onChange(version)` is called with each newer read of the version (the page redraws its properties). */
export function renderReplication(ctx, version, onChange = () => {}) {
  const definitionId = parentId(version.id);
  const regions = el("div", { class: "regions", "aria-live": "polite" });
  const latest = el("p", { class: "latest", role: "status" }, "Latest version of the definition: …");
  const section = el("section", { "aria-label": "Replication" }, heading("Replication", 2), regions, latest);
  const showLatest = async () => {
    const name = await latestName(ctx.arm, definitionId);
    clear(latest, "Latest version of the definition: ", name ? resourceLink(`${definitionId}/versions/${name}`, name) : el("span", { class: "muted" }, "none yet"));
  };
  (async () => {
    let current = version;
    let finished = drawRegions(regions, current);
    await showLatest();
    while (!finished) {
      await sleep(POLL_MS);
      if (!section.isConnected) return; // the user went elsewhere
      try {
        current = await ctx.arm.get(version.id, { $expand: "ReplicationStatus" });
      } catch { continue; }
      finished = drawRegions(regions, current);
      onChange(current);
      await showLatest();
    }
  })();
  return section;
}

// Browse: every resource of a kind the user may read, across subscriptions (Azure Resource
// Graph filters the rows to what the caller may read), paged and searchable.
import { el, clear, heading, loading } from "../ui.js";
import { KINDS, resourceLink, typeLabel, stateBadge } from "./common.js";
import { pagedList } from "./list.js";

const GRAPH = "/providers/Microsoft.ResourceGraph/resources";
const PAGE = 1000;

/** arm.page-like pages of a Resource Graph query. */
export function graphPages(arm, query) {
  const at = async (skipToken) => {
    const options = { $top: PAGE, ...(skipToken ? { $skipToken: skipToken } : {}) };
    const body = await arm.post(GRAPH, { query, options });
    const token = body.$skipToken;
    return { items: body.data || [], next: token ? () => at(token) : null };
  };
  return () => at(null);
}

const quote = (text) => `'${String(text).replace(/'/g, "''")}'`;

export function resourceColumns() {
  return [
    { title: "Name", value: (r) => resourceLink(r.id, r.name) },
    { title: "Type", value: (r) => typeLabel(r.type) },
    { title: "Resource group", value: (r) => r.resourceGroup || "" },
    { title: "Location", value: (r) => r.location || "" },
    { title: "State", value: (r) => stateBadge(r.properties && r.properties.provisioningState) },
  ];
}

export function locationFilter(locations) {
  return { label: "Location", options: locations.map((l) => [l, l]), test: (r, v) => (r.location || "").toLowerCase() === v.toLowerCase() };
}

export async function knownLocations(arm, subscriptionId) {
  if (!subscriptionId) return [];
  try {
    const found = await arm.list(`/subscriptions/${subscriptionId}/locations`);
    return found.map((l) => l.name);
  } catch { return []; }
}

export async function renderBrowse(container, ctx, kindKey) {
  const kind = KINDS[kindKey];
  if (!kind) { clear(container, heading("Not found"), el("p", {}, `Unknown kind ${kindKey}.`)); return; }
  clear(container, heading(kind.label), loading());
  const query = `Resources | where type =~ ${quote(kind.type)} | project id, name, type, location, resourceGroup, subscriptionId, properties, tags | order by name asc`;
  const subscriptions = await ctx.arm.list("/subscriptions").catch(() => []);
  const locations = await knownLocations(ctx.arm, subscriptions[0] && subscriptions[0].subscriptionId);
  const actions = kindKey === "galleries" ? el("div", { class: "actions" }, el("a", { class: "btn primary", href: "#/create/gallery" }, "Create a gallery")) : null;
  clear(container, heading(kind.label), actions, pagedList({
    first: graphPages(ctx.arm, query), columns: resourceColumns(), label: kind.label.toLowerCase(),
    filters: [locationFilter(locations), {
      label: "Subscription", options: subscriptions.map((s) => [s.subscriptionId, s.displayName || s.subscriptionId]),
      test: (r, v) => (r.subscriptionId || "").toLowerCase() === v.toLowerCase(),
    }],
  }));
}

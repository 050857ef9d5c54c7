// Home: the user's subscriptions and every resource they may read.
import { el, clear, heading, table, loading } from "../ui.js";
import { KINDS, resourceLink } from "./common.js";
import { pagedList } from "./list.js";
import { graphPages, resourceColumns } from "./browse.js";

export async function renderHome(container, ctx) {
  clear(container, heading("Galley"), loading());
  const subscriptions = await ctx.arm.list("/subscriptions");
  const types = Object.values(KINDS).map((k) => [k.type, k.label])
    .concat([["Microsoft.Compute/galleries/images", "Image definitions"], ["Microsoft.Compute/galleries/images/versions", "Image versions"]]);
  clear(container,
    heading("Galley"),
    el("p", { class: "subtitle" }, `Signed in as ${ctx.user.name || ctx.user.objectId}`),
    el("div", { class: "actions" },
      el("a", { class: "btn primary", href: "#/create/gallery" }, "Create a gallery")),
    heading("Subscriptions", 2),
    table([
      { title: "Subscription", value: (s) => resourceLink(`/subscriptions/${s.subscriptionId}`, s.displayName || s.subscriptionId) },
      { title: "Id", value: (s) => s.subscriptionId },
      { title: "State", value: (s) => s.state || "" },
    ], subscriptions, { label: "Subscriptions", empty: "You hold no role in any subscription." }),
    heading("All resources", 2),
    pagedList({
      first: graphPages(ctx.arm, "Resources | project id, name, type, location, resourceGroup, subscriptionId, properties | order by id asc"),
      columns: resourceColumns(), label: "resources",
      filters: [{ label: "Type", options: types, test: (r, v) => (r.type || "").toLowerCase() === v.toLowerCase() }],
    }));
}

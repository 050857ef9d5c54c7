// What the core pages share: ARM ids, the resource kinds the portal browses, links to pages.
import { el } from "../ui.js";

/** The kinds listed under Browse: key → {label, type, provider path under a subscription or group}. */
export const KINDS = {
  galleries: { label: "Galleries", type: "Microsoft.Compute/galleries" },
  disks: { label: "Disks", type: "Microsoft.Compute/disks" },
  snapshots: { label: "Snapshots", type: "Microsoft.Compute/snapshots" },
  images: { label: "Managed images", type: "Microsoft.Compute/images" },
  storageAccounts: { label: "Storage accounts", type: "Microsoft.Storage/storageAccounts" },
  imageTemplates: { label: "Image templates", type: "Microsoft.VirtualMachineImages/imageTemplates" },
  virtualMachines: { label: "Virtual machines", type: "Microsoft.Compute/virtualMachines" },
};

export const TYPES = {
  subscription: "Microsoft.Resources/subscriptions",
  group: "Microsoft.Resources/resourceGroups",
  gallery: "Microsoft.Compute/galleries",
  definition: "Microsoft.Compute/galleries/images",
  version: "Microsoft.Compute/galleries/images/versions",
};

/** The collection path of a kind in a subscription or a group id. */
export function collectionPath(scopeId, kind) {
  return `${scopeId}/providers/${KINDS[kind].type}`;
}

/**
 * Parses an ARM id: {subscription, group, type, name, parent, provider} where type is
 * "Namespace/a/b" for nested resources, or the subscription/group types.
 */
export function parseId(id) {
  const parts = String(id || "").split("/").filter(Boolean);
  const out = { id: `/${parts.join("/")}`, subscription: null, group: null, type: null, name: null };
  let i = 0;
  if ((parts[i] || "").toLowerCase() === "subscriptions") { out.subscription = parts[i + 1]; i += 2; out.type = TYPES.subscription; out.name = out.subscription; }
  if ((parts[i] || "").toLowerCase() === "resourcegroups") { out.group = parts[i + 1]; i += 2; out.type = TYPES.group; out.name = out.group; }
  const at = parts.map((p) => p.toLowerCase()).lastIndexOf("providers");
  if (at >= i && parts[at + 1]) {
    const rest = parts.slice(at + 2);
    const types = rest.filter((_, j) => j % 2 === 0);
    out.type = [parts[at + 1], ...types].join("/");
    out.name = rest.length % 2 === 0 ? rest[rest.length - 1] : null;
  }
  return out;
}

/** The id of the enclosing resource (a version's definition, a definition's gallery, a group's subscription). */
export function parentId(id) {
  const parts = String(id).split("/").filter(Boolean);
  const lower = parts.map((p) => p.toLowerCase());
  if (lower.length <= 2) return null;
  if (lower.length === 4) return `/${parts.slice(0, 2).join("/")}`;
  const at = lower.lastIndexOf("providers");
  if (parts.length - at === 4) return `/${parts.slice(0, at).join("/")}`; // a top-level resource → its group
  return `/${parts.slice(0, -2).join("/")}`;
}

export function sameType(a, b) { return String(a || "").toLowerCase() === String(b || "").toLowerCase(); }

export function resourceHash(id) { return `#/resource${id}`; }

export function resourceLink(id, text) {
  return el("a", { href: resourceHash(id) }, text || parseId(id).name || id);
}

/** The short label of a type: "Microsoft.Compute/galleries/images" → "Image definition". */
export function typeLabel(type) {
  const names = {
    [TYPES.subscription.toLowerCase()]: "Subscription",
    [TYPES.group.toLowerCase()]: "Resource group",
    [TYPES.gallery.toLowerCase()]: "Gallery",
    [TYPES.definition.toLowerCase()]: "Image definition",
    [TYPES.version.toLowerCase()]: "Image version",
    "microsoft.compute/disks": "Disk",
    "microsoft.compute/snapshots": "Snapshot",
    "microsoft.compute/images": "Managed image",
    "microsoft.storage/storageaccounts": "Storage account",
    "microsoft.virtualmachineimages/imagetemplates": "Image template",
    "microsoft.compute/virtualmachines": "Virtual machine",
  };
  return names[String(type || "").toLowerCase()] || type || "Resource";
}

/** Breadcrumbs from the subscription down to `id`. */
export function breadcrumbs(id) {
  const chain = [];
  for (let at = id; at; at = parentId(at)) chain.unshift(at);
  return el("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
    el("ol", {}, el("li", {}, el("a", { href: "#/" }, "Home")),
      chain.map((step, i) => el("li", {}, i === chain.length - 1
        ? el("span", { "aria-current": "page" }, parseId(step).name)
        : resourceLink(step)))));
}

export function stateBadge(state) {
  const text = String(state || "");
  const kind = /succeeded|completed|running/i.test(text) ? "ok" : /fail|cancel/i.test(text) ? "bad" : "busy";
  return el("span", { class: `badge ${kind}` }, text || "—");
}

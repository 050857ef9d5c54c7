// Access control on any scope (Microsoft.Authorization role assignments: inherited ones marked,
// add, remove) and a gallery's sharing with subscriptions and tenants (…/galleries/{g}/share).
import { el, clear, heading, table, field, button, errorBox, showError, loading, confirmDialog, toast } from "../ui.js";

const AUTH = "/providers/Microsoft.Authorization";
const IDENTITY = "/providers/Galley.Identity";

async function principals(arm) {
  const kinds = [["users", "User"], ["servicePrincipals", "Service principal"], ["groups", "Group"]];
  const lists = await Promise.all(kinds.map(([path, label]) => arm.list(`${IDENTITY}/${path}`)
    .then((found) => found.map((p) => ({ id: (p.id || p.objectId || "").toLowerCase(), name: p.displayName || p.userPrincipalName || p.name || p.appId || p.id, kind: label })))
    .catch(() => [])));
  return lists.flat().filter((p) => p.id);
}

function scopeLabel(scope) {
  const parts = scope.split("/").filter(Boolean);
  return parts.length ? `${parts[parts.length - 2]}/${parts[parts.length - 1]}` : "/";
}

const norm = (s) => String(s || "").toLowerCase().replace(/\/+$/, "");

export async function renderAccess(panel, ctx, scope) {
  clear(panel, heading("Access control (IAM)", 2), loading());
  const [assignments, roles, people] = await Promise.all([
    ctx.arm.list(`${scope}${AUTH}/roleAssignments`),
    ctx.arm.list(`${scope}${AUTH}/roleDefinitions`).catch(() => []),
    principals(ctx.arm),
  ]);
  const roleName = new Map(roles.map((r) => [r.id.split("/").pop().toLowerCase(), r.properties.roleName]));
  const who = new Map(people.map((p) => [p.id, p]));
  const relevant = assignments.filter((a) => norm(scope).startsWith(norm(a.properties.scope)) || norm(a.properties.scope) === norm(scope));
  const rows = relevant.map((a) => ({ a, inherited: norm(a.properties.scope) !== norm(scope) }));

  const remove = async (a) => {
    const ok = await confirmDialog({ title: "Remove role assignment?", body: [el("p", {},
      `${roleName.get(a.properties.roleDefinitionId.split("/").pop().toLowerCase()) || "Role"} for ${(who.get(a.properties.principalId.toLowerCase()) || {}).name || a.properties.principalId}`)], confirm: "Remove" });
    if (!ok) return;
    try {
      await ctx.arm.delete(a.id);
      toast("Role assignment removed.");
      renderAccess(panel, ctx, scope);
    } catch (error) { toast(`${error.code}: ${error.message}`, "error"); }
  };

  const list = table([
    { title: "Principal", value: ({ a }) => { const p = who.get(a.properties.principalId.toLowerCase()); return p ? `${p.name} (${p.kind})` : a.properties.principalId; } },
    { title: "Role", value: ({ a }) => roleName.get(a.properties.roleDefinitionId.split("/").pop().toLowerCase()) || a.properties.roleDefinitionId },
    { title: "Scope", value: ({ a, inherited }) => el("span", {}, a.properties.scope, inherited ? el("span", { class: "badge busy inherited" }, "Inherited") : null) },
    { title: "Actions", value: ({ a, inherited }) => (inherited ? el("span", { class: "muted" }, `Manage at ${scopeLabel(a.properties.scope)}`) : button("Remove", () => remove(a), { label: `Remove ${a.name}` })) },
  ], rows, { caption: "Role assignments", empty: "No role assignments here or above." });

  // Add a role assignment
  const principal = field("principalId", "Principal", { kind: "select", options: [["", "Choose a principal"], ...people.map((p) => [p.id, `${p.name} (${p.kind})`])] });
  const manual = field("principalIdText", "Or an object id", { hint: "A principal of another tenant or one not listed." });
  const role = field("roleDefinitionId", "Role", { kind: "select", options: [["", "Choose a role"], ...roles.map((r) => [r.id, r.properties.roleName])] });
  const where = field("scope", "Scope", { value: scope });
  const fallback = el("div", {});
  const fields = { principalId: principal, roleDefinitionId: role, scope: where };
  const add = async (event) => {
    event.preventDefault();
    const principalId = manual.value() || principal.value();
    if (!principalId) { principal.setError("Choose a principal."); return; }
    if (!role.value()) { role.setError("Choose a role."); return; }
    try {
      await ctx.arm.put(`${where.value()}${AUTH}/roleAssignments/${crypto.randomUUID()}`,
        { properties: { principalId, roleDefinitionId: role.value() } });
      toast("Role assignment added.");
      renderAccess(panel, ctx, scope);
    } catch (error) { showError(error, fields, fallback); }
  };
  const form = el("form", { class: "form", "aria-label": "Add a role assignment" },
    el("fieldset", {}, el("legend", {}, "Add a role assignment"), principal.row, manual.row, role.row, where.row, fallback,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "btn primary" }, "Add role assignment"))));
  form.addEventListener("submit", add);
  clear(panel, heading("Access control (IAM)", 2), list, form);
}

export function renderSharing(panel, ctx, gallery) {
  const draw = (current) => {
    const groups = ((current.properties.sharingProfile || {}).groups) || [];
    const rows = groups.flatMap((g) => (g.ids || []).map((id) => ({ type: g.type, id })));
    const kind = field("type", "Share with", { kind: "select", options: [["Subscriptions", "Subscription"], ["AADTenants", "Tenant"]] });
    const ids = field("ids", "Subscription or tenant id", { required: true });
    const fallback = el("div", {});
    const send = async (operationType, type, list) => {
      try {
        const answer = await ctx.arm.post(`${gallery.id}/share`, { operationType, groups: [{ type, ids: list }] });
        if (answer && answer._operation) await ctx.arm.wait(answer);
        toast(operationType === "Add" ? "Shared." : "Sharing removed.");
        draw(await ctx.arm.get(gallery.id, { $select: "Permissions" }));
      } catch (error) { showError(error, { ids, type: kind }, fallback); }
    };
    const form = el("form", { class: "form", "aria-label": "Share the gallery" },
      el("fieldset", {}, el("legend", {}, "Share"), kind.row, ids.row, fallback,
        el("div", { class: "actions" }, el("button", { type: "submit", class: "btn primary" }, "Share"))));
    form.addEventListener("submit", (event) => { event.preventDefault(); send("Add", kind.value(), ids.value().split(/[\s,]+/).filter(Boolean)); });
    const permission = (current.properties.sharingProfile || {}).permissions || "Private";
    const enable = async () => {
      try {
        const answer = await ctx.arm.patch(gallery.id, { properties: { sharingProfile: { permissions: "Groups" } } });
        if (answer && answer._operation && /creating|updating/i.test((answer.properties || {}).provisioningState || "")) await ctx.arm.wait(answer);
        draw(await ctx.arm.get(gallery.id, { $select: "Permissions" }));
      } catch (error) { clear(fallback, errorBox(error)); }
    };
    if (permission !== "Groups") {
      clear(panel, heading("Sharing", 2), el("p", {}, `Sharing: ${permission}. To share the gallery with subscriptions or tenants, its sharing permission must be Groups.`),
        fallback, el("div", { class: "actions" }, button("Allow sharing with subscriptions and tenants", enable, { kind: "primary" })));
      return;
    }
    clear(panel, heading("Sharing", 2),
      el("p", {}, `Sharing: ${permission}`),
      table([
        { title: "Shared with", value: (r) => (r.type === "AADTenants" ? "Tenant" : "Subscription") },
        { title: "Id", value: (r) => r.id },
        { title: "Actions", value: (r) => button("Stop sharing", () => send("Remove", r.type, [r.id]), { label: `Stop sharing with ${r.id}` }) },
      ], rows, { empty: "Not shared with anyone." }), form);
  };
  clear(panel, loading());
  ctx.arm.get(gallery.id, { $select: "Permissions" }).then(draw).catch((error) => clear(panel, errorBox(error)));
}

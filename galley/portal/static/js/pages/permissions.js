// Whether the signed-in user may do an action at a scope, when that is cheap to know: from the
// role assignments the API lists for the user there (inherited ones included) and the role
// definitions. Used only to hide buttons: the API decides every request on its own.
// Answers null ("don't know", so the button stays) when the user's roles come through a group.

let definitions = null;

async function roleDefinitions(arm) {
  if (!definitions) {
    definitions = arm.list("/providers/Microsoft.Authorization/roleDefinitions")
      .then((all) => new Map(all.map((d) => [d.id.split("/").pop().toLowerCase(), d])))
      .catch(() => new Map());
  }
  return definitions;
}

function matches(pattern, action) {
  const regex = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`, "i");
  return regex.test(action);
}

function grants(role, action) {
  return ((role.properties && role.properties.permissions) || []).some((p) =>
    (p.actions || []).some((a) => matches(a, action)) && !(p.notActions || []).some((a) => matches(a, action)));
}

/**
 * For each of `actions` (e.g. "Microsoft.Compute/galleries/delete") at `scope`: true, false, or
 * null when unknown. One read of the user's assignments there serves them all.
 */
export async function permissions(ctx, scope, actions) {
  const unknown = actions.map(() => null);
  if (!ctx.user || !ctx.user.objectId) return unknown;
  try {
    const [mine, roles] = await Promise.all([
      ctx.arm.list(`${scope}/providers/Microsoft.Authorization/roleAssignments`, { $filter: `principalId eq '${ctx.user.objectId}'` }),
      roleDefinitions(ctx.arm)]);
    if (!mine.length) return unknown;
    return actions.map((action) => mine.some((a) => {
      const role = roles.get(String(a.properties.roleDefinitionId).split("/").pop().toLowerCase());
      return role ? grants(role, action) : true;
    }));
  } catch {
    return unknown;
  }
}

export async function canDo(ctx, scope, action) {
  return (await permissions(ctx, scope, [action]))[0];
}

// Extension points: other modules (live/index.js) add panels, routes and navigation links here;
// app.js reads them when it draws the shell and resource pages.
//
//   registerPanel(resourceType, {title, render(container, resource, ctx)})
//       a section on every resource page of that type (type case-insensitive,
//       e.g. "Microsoft.Compute/virtualMachines"); render may be async.
//   registerRoute(pattern, render(container, ctx, params))
//       a top-level page: pattern "#/upload", or with named parts "#/runs/:id" (params.id)
//       and a trailing "*" for the rest (params.rest).
//   registerNav(label, hash)     a link in the navigation.
// ctx = {arm, ui, navigate(hash), user}

const panels = new Map();
const routes = [];
const navLinks = [];

export function registerPanel(resourceType, panel) {
  const key = resourceType.toLowerCase();
  if (!panels.has(key)) panels.set(key, []);
  panels.get(key).push(panel);
}

export function panelsFor(resourceType) {
  return panels.get(String(resourceType || "").toLowerCase()) || [];
}

function compile(pattern) {
  const names = [];
  const source = pattern.replace(/^#?\/?/, "").split("/").map((part) => {
    if (part === "*") { names.push("rest"); return "(.*)"; }
    if (part.startsWith(":")) { names.push(part.slice(1)); return "([^/]+)"; }
    return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }).join("/");
  return { regex: new RegExp(`^#/${source}/?$`, "i"), names };
}

export function registerRoute(pattern, render) {
  routes.push({ pattern, render, ...compile(pattern) });
}

/** The first registered route matching `hash`: {render, params} or null. */
export function matchRoute(hash) {
  for (const route of routes) {
    const found = route.regex.exec(hash);
    if (found) {
      const params = {};
      route.names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
      return { render: route.render, params };
    }
  }
  return null;
}

export function registerNav(label, hash) {
  navLinks.push({ label, hash });
}

export function navEntries() {
  return [...navLinks];
}

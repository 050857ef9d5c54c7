// What the create and edit forms share: tags, regions, resource groups and the
// "Review + create" step (the API validates; its errors are shown next to their fields).
import { el, clear, field, button, properties, showError, heading, toast } from "../ui.js";
import { resourceHash } from "./common.js";

export function tagsField(tags = {}) {
  const f = field("tags", "Tags", { kind: "textarea", hint: "One name=value a line.",
    value: Object.entries(tags || {}).map(([k, v]) => `${k}=${v}`).join("\n") });
  f.tags = () => Object.fromEntries(f.value().split("\n").map((line) => line.trim()).filter(Boolean)
    .map((line) => { const at = line.indexOf("="); return at < 0 ? [line, ""] : [line.slice(0, at).trim(), line.slice(at + 1).trim()]; }));
  return f;
}

export async function regionsOf(arm, subscriptionId) {
  try { return (await arm.list(`/subscriptions/${subscriptionId}/locations`)).map((l) => [l.name, l.displayName || l.name]); } catch { return []; }
}

export function fieldset(legend, ...rows) {
  return el("fieldset", {}, el("legend", {}, legend), rows);
}

/** An ISO time for a date input's value (end of that day, UTC), or undefined. */
export function endOfDay(value) {
  return value ? `${value}T23:59:59Z` : undefined;
}

export function dateValue(iso) {
  return iso ? String(iso).slice(0, 10) : "";
}

/** Drops undefined, "" and empty objects, so the API sees only what the user gave. */
export function prune(value) {
  if (Array.isArray(value)) return value.map(prune);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const p = prune(v);
      if (p === undefined || p === "" || (p && typeof p === "object" && !Array.isArray(p) && !Object.keys(p).length)) continue;
      out[k] = p;
    }
    return out;
  }
  return value;
}

/**
 * The Review + create step under `form`: on submit, `build()` gives {method, path, body,
 * summary, before?}; the review lists the summary with a Create button; create sends it and goes
 * to the resource's page (which follows long work, such as replication, live). Errors go next to their fields (`fields`) or into a box.
 */
export function reviewAndCreate(ctx, { form, fields, build, verb = "Create", done }) {
  const fallback = el("div", { class: "form-error" });
  const review = el("section", { class: "review", "aria-label": "Review", hidden: true });
  form.append(fallback, el("div", { class: "actions" },
    el("button", { type: "submit", class: "btn primary" }, verb === "Create" ? "Review + create" : "Review + save")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.values(fields).forEach((f) => f.clearError());
    clear(fallback);
    let request;
    try { request = build(); } catch (error) { showError(error, fields, fallback); return; }
    const send = async (createButton) => {
      createButton.disabled = true;
      try {
        if (request.before) await request.before(); // e.g. a new resource group first
        const answer = request.method === "PATCH" ? await ctx.arm.patch(request.path, request.body) : await ctx.arm.put(request.path, request.body);
        review.hidden = true;
        const busy = /^(creating|updating|accepted)$/i.test(((answer && answer.properties) || {}).provisioningState || "");
        toast(busy ? `${request.name}: ${answer.properties.provisioningState.toLowerCase()}…` : `${verb === "Create" ? "Created" : "Saved"} ${request.name}.`);
        if (done) done(answer); else ctx.navigate(resourceHash(request.path));
      } catch (error) {
        review.hidden = true;
        form.hidden = false;
        showError(error, fields, fallback);
      } finally {
        createButton.disabled = false;
      }
    };
    const create = button(verb, () => send(create), { kind: "primary" });
    clear(review, heading("Review", 2), properties(request.summary.map(([k, v]) => [k, v === undefined || v === null ? "" : String(v)])),
      el("div", { class: "actions" }, button("Back", () => { review.hidden = true; form.hidden = false; }), create));
    form.hidden = true;
    review.hidden = false;
    create.focus();
  });
  return review;
}

/** Throws an ArmError-like {target, message} when a required field is empty (before any request). */
export function required(fields, names) {
  for (const name of names) {
    if (!fields[name].value()) {
      const error = { message: "This field is required.", target: name, code: "Required" };
      throw error;
    }
  }
}

// DOM helpers. Everything is built with createElement/textContent (never innerHTML with data),
// and no inline style or script: the CSP forbids them. Classes come from css/portal.css.

/** el("a", {href: "#/x", class: "btn"}, "text", child, ...): attributes; `on*` functions become listeners. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

let uniqueCounter = 0;
export const uid = (prefix = "f") => `${prefix}-${++uniqueCounter}`;

export function heading(text, level = 1) { return el(`h${level}`, {}, text); }

export function link(text, hash) { return el("a", { href: hash }, text); }

export function button(text, onClick, { kind = "", type = "button", label } = {}) {
  return el("button", { type, class: kind ? `btn ${kind}` : "btn", onclick: onClick, "aria-label": label }, text);
}

/** A table: columns [{title, value(row) → string|Node}], rows. */
export function table(columns, rows, { caption, label, empty = "Nothing here yet." } = {}) {
  const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c.title))));
  const body = el("tbody", {}, rows.length ? rows.map((row) => el("tr", {}, columns.map((c) => el("td", {}, c.value(row)))))
    : el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, empty)));
  // Focusable, so a table wider than a phone's screen can be scrolled with the keyboard (axe).
  return el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption || label || "Table" },
    el("table", {}, caption ? el("caption", {}, caption) : null, head, body));
}

/** Properties as a definition list: [[label, value], ...]. */
export function properties(pairs) {
  return el("dl", { class: "props" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v))]));
}

/**
 * A labelled form field with its error slot. kind: "text" | "number" | "select" | "checkbox" |
 * "textarea" | "date". Returns {row, input, name, aliases, value(), setError(msg), clearError()};
 * `aliases`: the ARM error targets this field answers for besides its name (see showError).
 */
export function field(name, label, { kind = "text", value = "", options = [], required = false, hint, placeholder, min, max, aliases = [] } = {}) {
  const id = uid(name);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  let input;
  if (kind === "select") {
    input = el("select", { id, name }, options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return el("option", { value: v, selected: String(v) === String(value) }, text);
    }));
  } else if (kind === "textarea") {
    input = el("textarea", { id, name, rows: 4, placeholder });
    input.value = value;
  } else if (kind === "checkbox") {
    input = el("input", { id, name, type: "checkbox", checked: Boolean(value) });
  } else {
    input = el("input", { id, name, type: kind, value, placeholder, min, max });
  }
  if (required) input.required = true;
  input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const error = el("p", { id: errorId, class: "field-error", role: "alert", hidden: true });
  const row = el("div", { class: kind === "checkbox" ? "field field-check" : "field" },
    el("span", { class: "label-row" }, el("label", { for: id }, label), required ? el("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    input, hint ? el("p", { id: hintId, class: "hint" }, hint) : null, error);
  return {
    row, input, name, aliases,
    value: () => (kind === "checkbox" ? input.checked : input.value.trim()),
    setError(message) { error.textContent = message; error.hidden = false; input.setAttribute("aria-invalid", "true"); },
    clearError() { error.textContent = ""; error.hidden = true; input.removeAttribute("aria-invalid"); },
  };
}

/**
 * Shows an ARM error next to the field it names (error.target, or a detail's target), else in
 * `fallback`. Fields: {name: field}; a field matches a target equal to its name or one of its
 * `aliases` ("galleryImageVersionName", "properties.publishingProfile.targetRegions"), or inside it.
 */
export function showError(error, fields, fallback) {
  Object.values(fields).forEach((f) => f.clearError());
  const entries = [error, ...(error.details || [])].filter((e) => e && e.message);
  let placed = false;
  for (const entry of entries) {
    const target = String(entry.target || "").toLowerCase();
    if (!target) continue;
    // The field whose name or alias is the target or encloses it ("properties.x" holds "properties.x.y").
    const hits = (alias) => { const a = alias.toLowerCase(); return target === a || target.startsWith(`${a}.`) || target.startsWith(`${a}[`); };
    const match = Object.entries(fields)
      .map(([name, f]) => [f, [name, ...(f.aliases || [])].filter(hits).reduce((n, a) => Math.max(n, a.length), -1)])
      .filter(([, length]) => length >= 0).sort((x, y) => y[1] - x[1])[0];
    if (match) { match[0].setError(entry.message); if (!placed && match[0].input) match[0].input.focus(); placed = true; }
  }
  if (!placed && fallback) clear(fallback, errorBox(error));
  else if (fallback) clear(fallback);
  return placed;
}

export function errorBox(error) {
  const code = error && error.code ? `${error.code}: ` : "";
  return el("div", { class: "alert error", role: "alert" }, code + (error && error.message ? error.message : String(error)));
}

export function loading(text = "Loading…") { return el("p", { class: "muted", role: "status" }, text); }

/** Shows a modal confirm dialog; resolves true when confirmed. `body` may list dependents. */
export function confirmDialog({ title, body = [], confirm = "Delete", kind = "danger" }) {
  return new Promise((resolve) => {
    const titleId = uid("dialog");
    const dialog = el("dialog", { class: "dialog", "aria-labelledby": titleId });
    const close = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    dialog.append(
      el("h2", { id: titleId }, title),
      el("div", { class: "dialog-body" }, body),
      el("div", { class: "actions" },
        button("Cancel", () => close(false)),
        button(confirm, () => close(true), { kind })));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(message, kind = "info") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const note = el("div", { class: `toast ${kind}` }, message);
  region.append(note);
  setTimeout(() => note.remove(), 6000);
}

/** Tabs: [{title, render(container)}]; renders a tab only when first shown. */
export function tabs(entries) {
  const list = el("div", { class: "tabs", role: "tablist" });
  const panels = el("div", { class: "tab-panels" });
  const buttons = entries.map((entry, i) => {
    const tabId = uid("tab");
    const panel = el("section", { role: "tabpanel", "aria-labelledby": tabId, hidden: i !== 0, tabindex: 0 });
    let drawn = false;
    const show = () => {
      buttons.forEach((b, j) => { b.setAttribute("aria-selected", String(j === i)); b.tabIndex = j === i ? 0 : -1; });
      [...panels.children].forEach((p, j) => { p.hidden = j !== i; });
      if (!drawn) { drawn = true; Promise.resolve(entry.render(panel)).catch((e) => clear(panel, errorBox(e))); }
    };
    const tab = el("button", { type: "button", role: "tab", id: tabId, "aria-selected": String(i === 0), tabindex: i === 0 ? 0 : -1, onclick: show }, entry.title);
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = buttons[(i + step + buttons.length) % buttons.length];
      next.focus(); next.click();
    });
    panels.append(panel);
    entry.show = show;
    return tab;
  });
  list.append(...buttons);
  const root = el("div", { class: "tabset" }, list, panels);
  if (entries.length) entries[0].show();
  return root;
}

export function formatBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

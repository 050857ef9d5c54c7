// A paged, searchable list. It asks the API for one page at a time (nextLink) and draws only
// `pageSize` rows, so a definition with 10,000 versions opens as fast as one with ten; a search
// or filter reads the remaining pages first, then filters them in the browser.
import { el, clear, uid, table, errorBox } from "../ui.js";

/**
 * first: () => Promise<{items, next}> (arm.page). columns: ui.table columns. text(item): what the
 * search box matches. filters: [{label, options: [[value, text]...], test(item, value)}].
 */
export function pagedList({ first, columns, text = (item) => item.name || "", filters = [], pageSize = 50, label = "items", empty }) {
  const root = el("section", { class: "paged-list", "aria-label": label });
  const status = el("p", { class: "muted list-status", role: "status" });
  const body = el("div", {});
  const searchId = uid("search");
  const search = el("input", { id: searchId, type: "search", placeholder: "Search by name", autocomplete: "off" });
  const selects = filters.map((f) => {
    const id = uid("filter");
    const select = el("select", { id }, el("option", { value: "" }, "All"), f.options.map(([v, t]) => el("option", { value: v }, t)));
    return { f, select, row: el("div", { class: "field inline" }, el("label", { for: id }, f.label), select) };
  });
  const prev = el("button", { type: "button", class: "btn" }, "Previous");
  const next = el("button", { type: "button", class: "btn" }, "Next");
  const pager = el("div", { class: "pager" }, prev, next);
  root.append(el("div", { class: "toolbar" },
    el("div", { class: "field inline" }, el("label", { for: searchId }, `Search ${label}`), search),
    selects.map((s) => s.row)), status, body, pager);

  let loaded = [];
  let more = null;
  let index = 0;
  let busy = false;

  const matching = () => {
    const needle = search.value.trim().toLowerCase();
    return loaded.filter((item) => (!needle || String(text(item)).toLowerCase().includes(needle))
      && selects.every(({ f, select }) => !select.value || f.test(item, select.value)));
  };
  const narrowed = () => search.value.trim() !== "" || selects.some(({ select }) => select.value);

  async function loadMore(all) {
    while (more && (all || (index + 1) * pageSize >= matching().length)) {
      const page = await more();
      loaded = loaded.concat(page.items);
      more = page.next;
      if (!all) break;
    }
  }

  async function draw() {
    if (busy) return;
    busy = true;
    try {
      if (narrowed() && more) { status.textContent = "Reading every page to search…"; await loadMore(true); }
      else if ((index + 1) * pageSize >= loaded.length && more) await loadMore(false);
      const rows = matching();
      const lastPage = Math.max(0, Math.ceil(rows.length / pageSize) - 1);
      if (index > lastPage) index = lastPage;
      const shown = rows.slice(index * pageSize, (index + 1) * pageSize);
      clear(body, table(columns, shown, { label: `List of ${label}`, empty: empty || `No ${label}.` }));
      const total = `${rows.length}${more ? "+" : ""}`;
      status.textContent = rows.length ? `${label[0].toUpperCase()}${label.slice(1)} ${index * pageSize + 1}–${index * pageSize + shown.length} of ${total}` : "";
      prev.disabled = index === 0;
      next.disabled = !more && (index + 1) * pageSize >= rows.length;
    } catch (error) {
      clear(body, errorBox(error));
    } finally {
      busy = false;
    }
  }

  prev.addEventListener("click", () => { index = Math.max(0, index - 1); draw(); });
  next.addEventListener("click", () => { index += 1; draw(); });
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { index = 0; draw(); }, 200); });
  selects.forEach(({ select }) => select.addEventListener("change", () => { index = 0; draw(); }));

  status.textContent = "Loading…";
  first().then((page) => { loaded = page.items; more = page.next; return draw(); })
    .catch((error) => { status.textContent = ""; clear(body, errorBox(error)); });
  return root;
}

/** Filter options from the values items have: [[v, v]...], sorted. */
export function optionsOf(items, value) {
  return [...new Set(items.map(value).filter(Boolean))].sort().map((v) => [v, v]);
}

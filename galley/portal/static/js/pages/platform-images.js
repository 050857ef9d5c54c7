// Platform images (Azure's marketplace-style catalog): publisher → offer → SKU → version, in a region.
import { el, clear, heading, field, table, loading, errorBox, button, properties } from "../ui.js";
import { regionsOf } from "./forms.js";

export async function renderPlatformImages(container, ctx) {
  clear(container, heading("Platform images"), loading());
  const subscriptions = await ctx.arm.list("/subscriptions");
  if (!subscriptions.length) { clear(container, heading("Platform images"), el("p", {}, "You hold no role in any subscription.")); return; }
  const subscription = subscriptions[0].subscriptionId;
  const regions = await regionsOf(ctx.arm, subscription);
  const region = field("region", "Region", { kind: "select", options: regions });
  const trail = el("nav", { class: "crumbs", "aria-label": "Catalog path" });
  const out = el("div", {});
  const base = () => `/subscriptions/${subscription}/providers/Microsoft.Compute/locations/${region.value()}/publishers`;

  const show = async (path) => {
    // path: [publisher, offer, sku, version], as far as chosen
    clear(trail, el("ol", {}, el("li", {}, button("Publishers", () => show([]), { kind: "link" })),
      path.map((part, i) => el("li", {}, button(part, () => show(path.slice(0, i + 1)), { kind: "link" })))));
    clear(out, loading());
    const [publisher, offer, sku, version] = path;
    const urls = [base(), `${base()}/${publisher}/artifacttypes/vmimage/offers`, `${base()}/${publisher}/artifacttypes/vmimage/offers/${offer}/skus`,
      `${base()}/${publisher}/artifacttypes/vmimage/offers/${offer}/skus/${sku}/versions`];
    const titles = ["Publisher", "Offer", "SKU", "Version"];
    try {
      if (version) {
        const image = await ctx.arm.get(`${urls[3]}/${version}`);
        const p = image.properties || {};
        clear(out, heading(`${publisher}:${offer}:${sku}:${version}`, 2), properties([
          ["URN", `${publisher}:${offer}:${sku}:${version}`], ["Id", image.id], ["Location", image.location],
          ["Operating system", (p.osDiskImage || {}).operatingSystem], ["Size (GB)", (p.osDiskImage || {}).sizeInGb],
          ["Generation", p.hyperVGeneration], ["Architecture", p.architecture]]),
        heading("JSON View", 3), el("pre", { class: "json", tabindex: 0 }, JSON.stringify(image, null, 2)));
        return;
      }
      const items = await ctx.arm.get(urls[path.length]);
      clear(out, table([{ title: titles[path.length], value: (item) => button(item.name, () => show([...path, item.name]), { kind: "link" }) }],
        Array.isArray(items) ? items : items.value || [], { empty: "The catalog has nothing here." }));
    } catch (error) { clear(out, errorBox(error)); }
  };
  region.input.addEventListener("change", () => show([]));
  clear(container, heading("Platform images"), region.row, trail, out);
  await show([]);
}

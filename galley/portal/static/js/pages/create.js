// Create a gallery, and an image definition in a gallery (seed 004's portal steps: basics, then
// Review + create).
import { el, clear, heading, field, loading } from "../ui.js";
import { breadcrumbs, parseId } from "./common.js";
import { tagsField, regionsOf, fieldset, reviewAndCreate, required, prune, endOfDay } from "./forms.js";

const NEW_GROUP = "__new__";

export async function renderCreateGallery(container, ctx, scopeId) {
  clear(container, heading("Create a gallery"), loading());
  const scope = scopeId ? parseId(scopeId) : {};
  const subscriptions = await ctx.arm.list("/subscriptions");
  const subscription = field("subscriptionId", "Subscription", { kind: "select", required: true, value: scope.subscription,
    options: subscriptions.map((s) => [s.subscriptionId, s.displayName || s.subscriptionId]), aliases: ["subscription"] });
  const group = field("resourceGroupName", "Resource group", { kind: "select", required: true, options: [] });
  const newGroup = field("newGroup", "New resource group name", { aliases: ["resourceGroupName"] });
  const name = field("galleryName", "Gallery name", { required: true, hint: "Letters, digits, dots and underscores.", aliases: ["name"] });
  const location = field("location", "Region", { kind: "select", required: true, options: [] });
  const description = field("description", "Description", { aliases: ["properties.description"] });
  const tags = tagsField();
  const fields = { subscriptionId: subscription, resourceGroupName: group, newGroup, galleryName: name, location, description, tags };

  const fillFor = async (subscriptionId) => {
    const [groups, regions] = await Promise.all([
      ctx.arm.list(`/subscriptions/${subscriptionId}/resourcegroups`).catch(() => []),
      regionsOf(ctx.arm, subscriptionId)]);
    clear(group.input, groups.map((g) => el("option", { value: g.name, selected: g.name === scope.group }, g.name)), el("option", { value: NEW_GROUP }, "Create new…"));
    clear(location.input, regions.map(([v, t]) => el("option", { value: v }, t)));
    const chosen = groups.find((g) => g.name === scope.group) || groups[0];
    if (chosen) location.input.value = chosen.location;
  };
  subscription.input.addEventListener("change", () => fillFor(subscription.value()));
  const showNewGroup = () => { newGroup.row.hidden = group.value() !== NEW_GROUP; };
  group.input.addEventListener("change", showNewGroup);
  await fillFor(subscription.value());
  showNewGroup();

  const form = el("form", { class: "form", "aria-label": "Create a gallery", novalidate: true },
    fieldset("Basics", subscription.row, group.row, newGroup.row, name.row, location.row, description.row),
    fieldset("Tags", tags.row));
  const review = reviewAndCreate(ctx, {
    form, fields,
    build() {
      required(fields, ["galleryName"]);
      const groupName = group.value() === NEW_GROUP ? newGroup.value() : group.value();
      if (!groupName) throw { target: group.value() === NEW_GROUP ? "newGroup" : "resourceGroupName", message: "Choose or name a resource group." };
      const groupId = `/subscriptions/${subscription.value()}/resourceGroups/${groupName}`;
      return {
        name: name.value(), method: "PUT",
        path: `${groupId}/providers/Microsoft.Compute/galleries/${name.value()}`,
        body: prune({ location: location.value(), tags: tags.tags(), properties: { description: description.value() } }),
        summary: [["Subscription", subscription.value()], ["Resource group", groupName + (group.value() === NEW_GROUP ? " (new)" : "")],
          ["Name", name.value()], ["Region", location.value()], ["Description", description.value()]],
        before: group.value() === NEW_GROUP ? () => ctx.arm.put(groupId, { location: location.value() }) : null,
      };
    },
  });
  clear(container, breadcrumbs(scopeId || "/"), heading("Create a gallery"), form, review);
}

export async function renderCreateDefinition(container, ctx, galleryId) {
  clear(container, breadcrumbs(galleryId), heading("Add an image definition"), loading());
  const gallery = await ctx.arm.get(galleryId);
  const regions = await regionsOf(ctx.arm, parseId(galleryId).subscription);
  const f = {
    galleryImageName: field("galleryImageName", "Image definition name", { required: true, aliases: ["name"] }),
    location: field("location", "Region", { kind: "select", options: regions, value: gallery.location }),
    osType: field("osType", "Operating system", { kind: "select", options: ["Linux", "Windows"], aliases: ["properties.osType"] }),
    hyperVGeneration: field("hyperVGeneration", "VM generation", { kind: "select", options: [["V1", "Gen 1"], ["V2", "Gen 2"]], aliases: ["properties.hyperVGeneration"] }),
    osState: field("osState", "Operating system state", { kind: "select", options: ["Generalized", "Specialized"], aliases: ["properties.osState"] }),
    architecture: field("architecture", "Architecture", { kind: "select", options: ["x64", "Arm64"], aliases: ["properties.architecture"] }),
    publisher: field("publisher", "Publisher", { required: true, aliases: ["properties.identifier.publisher"] }),
    offer: field("offer", "Offer", { required: true, aliases: ["properties.identifier.offer"] }),
    sku: field("sku", "SKU", { required: true, aliases: ["properties.identifier.sku", "properties.identifier"] }),
    description: field("description", "Description", { aliases: ["properties.description"] }),
    vcpuMin: field("vcpuMin", "Recommended vCPUs (min)", { kind: "number", min: 1, aliases: ["properties.recommended.vCPUs.min"] }),
    vcpuMax: field("vcpuMax", "Recommended vCPUs (max)", { kind: "number", min: 1, aliases: ["properties.recommended.vCPUs.max", "properties.recommended.vCPUs"] }),
    memoryMin: field("memoryMin", "Recommended memory GiB (min)", { kind: "number", min: 1, aliases: ["properties.recommended.memory.min"] }),
    memoryMax: field("memoryMax", "Recommended memory GiB (max)", { kind: "number", min: 1, aliases: ["properties.recommended.memory.max", "properties.recommended"] }),
    endOfLifeDate: field("endOfLifeDate", "End of life date", { kind: "date", aliases: ["properties.endOfLifeDate"] }),
    securityType: field("securityType", "Security type", { kind: "select", options: [["", "Standard"], ["TrustedLaunch", "Trusted launch"], ["TrustedLaunchSupported", "Trusted launch supported"], ["ConfidentialVM", "Confidential VM"]], aliases: ["properties.features"] }),
    acceleratedNetworking: field("acceleratedNetworking", "Accelerated networking supported", { kind: "checkbox" }),
    nvme: field("nvme", "NVMe disk controller supported", { kind: "checkbox" }),
    tags: tagsField(),
  };
  const number = (x) => (x.value() === "" ? undefined : Number(x.value()));
  const features = () => [
    f.securityType.value() ? { name: "SecurityType", value: f.securityType.value() } : null,
    f.acceleratedNetworking.value() ? { name: "IsAcceleratedNetworkSupported", value: "True" } : null,
    f.nvme.value() ? { name: "DiskControllerTypes", value: "SCSI, NVMe" } : null,
  ].filter(Boolean);
  const form = el("form", { class: "form", "aria-label": "Add an image definition", novalidate: true },
    fieldset("Basics", f.galleryImageName.row, f.location.row, f.osType.row, f.hyperVGeneration.row, f.osState.row, f.architecture.row),
    fieldset("Identifier", el("div", { class: "grid2" }, f.publisher.row, f.offer.row, f.sku.row)),
    fieldset("Version details", f.description.row, f.endOfLifeDate.row,
      el("div", { class: "grid2" }, f.vcpuMin.row, f.vcpuMax.row, f.memoryMin.row, f.memoryMax.row)),
    fieldset("Features", f.securityType.row, f.acceleratedNetworking.row, f.nvme.row),
    fieldset("Tags", f.tags.row));
  const review = reviewAndCreate(ctx, {
    form, fields: f,
    build() {
      required(f, ["galleryImageName", "publisher", "offer", "sku"]);
      const properties = {
        osType: f.osType.value(), osState: f.osState.value(), hyperVGeneration: f.hyperVGeneration.value(), architecture: f.architecture.value(),
        identifier: { publisher: f.publisher.value(), offer: f.offer.value(), sku: f.sku.value() },
        description: f.description.value(), endOfLifeDate: endOfDay(f.endOfLifeDate.value()),
        recommended: { vCPUs: { min: number(f.vcpuMin), max: number(f.vcpuMax) }, memory: { min: number(f.memoryMin), max: number(f.memoryMax) } },
        features: features(),
      };
      const body = prune({ location: f.location.value(), tags: f.tags.tags(), properties });
      if (!properties.features.length) delete body.properties.features;
      return {
        name: f.galleryImageName.value(), method: "PUT", path: `${galleryId}/images/${f.galleryImageName.value()}`, body,
        summary: [["Gallery", gallery.name], ["Name", f.galleryImageName.value()], ["Region", f.location.value()],
          ["OS", `${properties.osType} (${properties.osState})`], ["Generation", properties.hyperVGeneration],
          ["Publisher / offer / SKU", `${f.publisher.value()} / ${f.offer.value()} / ${f.sku.value()}`],
          ["End of life", properties.endOfLifeDate], ["Features", properties.features.map((x) => `${x.name}=${x.value}`).join(", ")]],
      };
    },
  });
  clear(container, breadcrumbs(galleryId), heading("Add an image definition"), form, review);
}

// #/usage: where storage goes, from Galley's usage report
// (GET /subscriptions/{id}/providers/Microsoft.Compute/galleyUsage, content/usage.py): per
// version the occupied bytes and, per region, occupied × replicas; per region the logical bytes
// against the physical bytes the chunk store holds after deduplication and compression; and the
// egress replication caused between regions. Charts (the vendored Chart.js, loaded on first use)
// and the same figures as tables.

const CHART_JS = "/portal/static/vendor/chart.umd.min.js";
const USAGE_API = "2024-03-03"; // the galleries api-versions answer the usage report
let chartLoaded = null;

function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  if (!chartLoaded) {
    chartLoaded = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = CHART_JS;
      script.addEventListener("load", () => resolve(window.Chart));
      script.addEventListener("error", () => { chartLoaded = null; reject(new Error("Chart.js could not be loaded.")); });
      document.head.append(script);
    });
  }
  return chartLoaded;
}

const exact = (n) => Number(n || 0).toLocaleString("en-US");

// "gallery/definition/version" of a version's id.
function versionLabel(id) {
  const parts = id.split("/");
  const at = (word) => parts[parts.findIndex((p) => p.toLowerCase() === word) + 1];
  return `${at("galleries")}/${at("images")}/${at("versions")}`;
}

export async function renderUsage(container, ctx, params = {}) {
  const { ui, arm } = ctx;
  const { el } = ui;
  const subscriptions = await arm.list("/subscriptions");
  const choice = ui.field("subscription", "Subscription", {
    kind: "select", options: subscriptions.map((s) => [s.subscriptionId, s.displayName || s.subscriptionId]) });
  const body = el("div", {});
  ui.clear(container, el("h1", {}, "Storage usage"),
    el("p", {}, "Occupied size is the data a version holds (not its provisioned size); a region stores it once per " +
      "replica. Physical bytes are what the region's chunk store keeps after deduplication and compression."),
    choice.row, body);
  const draw = async () => {
    ui.clear(body, ui.loading());
    const report = await arm.get(`/subscriptions/${choice.value()}/providers/Microsoft.Compute/galleyUsage`,
                                 { "api-version": USAGE_API });
    if (!container.isConnected) return;
    await drawReport(body, report, ui);
  };
  choice.input.addEventListener("change", () => draw().catch((e) => ui.clear(body, ui.errorBox(e))));
  if (subscriptions.length) await draw();
}

function chartBox(ui, title, description) {
  const canvas = ui.el("canvas", { role: "img", "aria-label": `${title}: ${description}` },
    `${description} The table below holds the same figures.`);
  return { canvas, box: ui.el("figure", { class: "chart" }, ui.el("figcaption", {}, title),
    ui.el("div", { class: "chart-area" }, canvas)) };
}

async function drawReport(body, report, ui) {
  const { el } = ui;
  const versions = report.versions || [], regions = report.regions || [], egress = report.egress || [];
  const regionNames = [...new Set(versions.flatMap((v) => v.regions.map((r) => r.region)))].sort();
  const perVersion = chartBox(ui, "Storage per version and region", "occupied size × replicas, stacked by region.");
  const perRegion = chartBox(ui, "Logical and physical storage per region", "logical bytes (occupied × replicas) " +
    "against the physical bytes stored after deduplication and compression.");
  const perRoute = chartBox(ui, "Egress between regions", "bytes replication moved from one region to another.");
  const totals = report.totals || {};
  ui.clear(body,
    el("dl", { class: "props usage-totals" },
      el("dt", {}, "Logical storage"), el("dd", { "data-total": "logicalBytes" }, `${exact(totals.logicalBytes)} bytes (${ui.formatBytes(totals.logicalBytes)})`),
      el("dt", {}, "Physical storage"), el("dd", { "data-total": "physicalBytes" }, `${exact(totals.physicalBytes)} bytes (${ui.formatBytes(totals.physicalBytes)})`),
      el("dt", {}, "Egress"), el("dd", { "data-total": "egressBytes" }, `${exact(totals.egressBytes)} bytes (${ui.formatBytes(totals.egressBytes)})`)),
    el("div", { class: "charts" }, perVersion.box, perRegion.box, perRoute.box),
    el("h2", {}, "Per version"),
    ui.table([
      { title: "Version", value: (v) => el("a", { href: `#/resource${v.id}` }, versionLabel(v.id)) },
      { title: "Occupied bytes", value: (v) => exact(v.occupiedBytes) },
      { title: "Provisioned bytes", value: (v) => exact(v.provisionedBytes) },
      { title: "Regions (replicas: storage bytes)", value: (v) => v.regions.map((r) => `${r.region} (${r.replicas}: ${exact(r.storageBytes)})`).join(", ") },
    ], versions, { caption: "Storage per image version", empty: "No image versions in this subscription." }),
    el("h2", {}, "Per region"),
    ui.table([
      { title: "Region", value: (r) => r.region },
      { title: "Logical bytes", value: (r) => exact(r.logicalBytes) },
      { title: "Physical bytes", value: (r) => exact(r.physicalBytes) },
      { title: "Physical bytes before compression", value: (r) => exact(r.physicalUncompressedBytes) },
    ], regions, { caption: "Logical and physical storage per region", empty: "Nothing stored yet." }),
    el("h2", {}, "Egress"),
    ui.table([
      { title: "From", value: (e) => e.from }, { title: "To", value: (e) => e.to },
      { title: "Bytes", value: (e) => exact(e.bytes) },
    ], egress, { caption: "Bytes moved between regions by replication", empty: "No replication between regions yet." }));

  let Chart;
  try {
    Chart = await loadChart();
  } catch (error) {
    body.prepend(ui.errorBox(error));
    return;
  }
  const mib = (n) => Number(n || 0) / (1024 * 1024);
  const options = (stacked) => ({
    responsive: true, maintainAspectRatio: false, animation: false,
    scales: { x: { stacked }, y: { stacked, beginAtZero: true, title: { display: true, text: "MiB" } } },
  });
  new Chart(perVersion.canvas, { type: "bar", options: options(true), data: {
    labels: versions.map((v) => versionLabel(v.id)),
    datasets: regionNames.map((region) => ({ label: region, data: versions.map((v) =>
      mib((v.regions.find((r) => r.region === region) || {}).storageBytes)) })),
  } });
  new Chart(perRegion.canvas, { type: "bar", options: options(false), data: {
    labels: regions.map((r) => r.region),
    datasets: [
      { label: "Logical", data: regions.map((r) => mib(r.logicalBytes)) },
      { label: "Physical", data: regions.map((r) => mib(r.physicalBytes)) },
      { label: "Physical before compression", data: regions.map((r) => mib(r.physicalUncompressedBytes)) },
    ],
  } });
  new Chart(perRoute.canvas, { type: "bar", options: options(false), data: {
    labels: egress.map((e) => `${e.from} → ${e.to}`),
    datasets: [{ label: "Egress", data: egress.map((e) => mib(e.bytes)) }],
  } });
}

// A resource's activity log: Microsoft.Insights' management events with resourceUri = the id,
// over the last 90 days, newest first, a page at a time.
import { el, clear, heading, formatTime } from "../ui.js";
import { pagedList } from "./list.js";
import { stateBadge } from "./common.js";

const DAYS = 90;

export function renderActivity(panel, ctx, parsed) {
  if (!parsed.subscription) {
    clear(panel, heading("Activity log", 2), el("p", { class: "muted" }, "The activity log is kept per subscription."));
    return;
  }
  const since = new Date(Date.now() - DAYS * 86400_000).toISOString();
  const clause = parsed.group && parsed.type === "Microsoft.Resources/resourceGroups"
    ? `resourceGroupName eq '${parsed.group.replace(/'/g, "''")}'`
    : `resourceUri eq '${parsed.id.replace(/'/g, "''")}'`;
  const filter = parsed.group || parsed.type !== "Microsoft.Resources/subscriptions"
    ? `eventTimestamp ge '${since}' and ${clause}` : `eventTimestamp ge '${since}'`;
  const path = `/subscriptions/${parsed.subscription}/providers/Microsoft.Insights/eventtypes/management/values`;
  clear(panel, heading("Activity log", 2), el("p", { class: "muted" }, `Writes and refusals of the last ${DAYS} days, newest first.`),
    pagedList({
      first: () => ctx.arm.page(path, { $filter: filter }), label: "events",
      text: (e) => `${e.operationName && e.operationName.value} ${e.caller} ${e.status && e.status.value}`,
      columns: [
        { title: "Time", value: (e) => formatTime(e.eventTimestamp) },
        { title: "Operation", value: (e) => (e.operationName || {}).localizedValue || "" },
        { title: "Status", value: (e) => stateBadge((e.status || {}).value) },
        { title: "Caller", value: (e) => e.caller || "" },
        { title: "HTTP", value: (e) => `${(e.httpRequest || {}).method || ""} ${(e.properties || {}).httpStatusCode || ""}` },
      ],
      filters: [{ label: "Status", options: [["Succeeded", "Succeeded"], ["Accepted", "Accepted"], ["Failed", "Failed"]], test: (e, v) => (e.status || {}).value === v }],
    }));
}

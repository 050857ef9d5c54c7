// The ARM client: every request the portal makes for data goes through here, with the signed-in
// user's bearer token, so the API's role checks apply exactly as they do for the SDK or the CLI.
import * as auth from "./auth.js";

// The api-version sent for each provider/type (one Galley accepts: galley/api/api_versions.py).
const VERSIONS = [
  [/\/providers\/microsoft\.authorization\//, "2022-04-01"],
  [/\/providers\/microsoft\.insights\//, "2015-04-01"],
  [/\/providers\/microsoft\.resourcegraph\//, "2022-10-01"],
  [/\/providers\/microsoft\.compute\/(galleries|sharedgalleries|communitygalleries)\b/, "2024-03-03"],
  [/\/providers\/microsoft\.compute\/locations\/[^/]+\/(sharedgalleries|communitygalleries)\b/, "2024-03-03"],
  [/\/providers\/microsoft\.compute\/(disks|snapshots|diskaccesses)\b/, "2024-03-02"],
  [/\/providers\/microsoft\.compute\//, "2024-07-01"],
  [/\/providers\/microsoft\.storage\//, "2023-05-01"],
  [/\/providers\/microsoft\.virtualmachineimages\//, "2024-02-01"],
  [/\/providers\/microsoft\.managedidentity\//, "2023-01-31"],
  [/\/providers\/microsoft\.network\//, "2024-05-01"],
];
const DEFAULT_VERSION = "2022-09-01"; // Microsoft.Resources: subscriptions, groups, Galley.Identity

/** The api-version for an ARM path: decided by the last provider segment in it. */
export function apiVersionFor(path) {
  const lower = path.toLowerCase();
  const at = lower.lastIndexOf("/providers/");
  const tail = at >= 0 ? lower.slice(at) + "/" : "";
  for (const [pattern, version] of VERSIONS) {
    if (pattern.test(tail)) return version;
  }
  return DEFAULT_VERSION;
}

export class ArmError extends Error {
  constructor(status, error = {}) {
    super(error.message || `The request failed with HTTP ${status}.`);
    this.name = "ArmError";
    this.status = status;
    this.code = error.code || `Http${status}`;
    this.target = error.target || null;
    this.details = error.details || [];
  }
}

/** The URL for `path` (an ARM id, a path, or an absolute URL such as a nextLink) with `query`. */
export function urlFor(path, query = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, value);
  }
  if (!url.searchParams.has("api-version") && url.origin === window.location.origin) {
    url.searchParams.set("api-version", apiVersionFor(url.pathname));
  }
  return url.toString();
}

/** fetch with the user's token (same origin only). */
export async function raw(method, url, { headers = {}, body } = {}) {
  const target = new URL(url, window.location.origin);
  const all = { ...headers };
  const token = auth.accessToken();
  if (token && target.origin === window.location.origin) all.Authorization = `Bearer ${token}`;
  const response = await fetch(target.toString(), { method, headers: all, body });
  // A 401 means the token expired or was revoked: auth.js signs the user in again.
  if (response.status === 401 && typeof auth.expired === "function") auth.expired();
  return response;
}

async function parsed(response) {
  const text = await response.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = { message: text }; }
  }
  if (!response.ok) {
    throw new ArmError(response.status, (body && body.error) || body || {});
  }
  return response.status === 204 ? null : body;
}

async function send(method, path, body, query) {
  const init = body === undefined ? {} : {
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await raw(method, urlFor(path, query), init);
  const result = await parsed(response);
  // Long-running writes: the caller may pass the whole answer to wait().
  if (result && typeof result === "object") {
    Object.defineProperty(result, "_operation", {
      value: response.headers.get("Azure-AsyncOperation") || response.headers.get("Location"),
      enumerable: false,
    });
  }
  return result;
}

async function get(path, query) { return send("GET", path, undefined, query); }

/** Every item of a list, following nextLink; `limit` stops early. */
async function list(path, query = {}, { limit = Infinity } = {}) {
  const items = [];
  let page = await get(path, query);
  for (;;) {
    items.push(...(page.value || []));
    if (items.length >= limit || !page.nextLink) break;
    page = await get(page.nextLink);
  }
  return items.slice(0, limit);
}

/** One page of a list: `{items, next}` where `next()` loads the following page (or is null). */
async function page(pathOrLink, query = {}) {
  const body = await get(pathOrLink, query);
  const link = body.nextLink;
  return { items: body.value || [], next: link ? () => page(link) : null };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const TERMINAL = new Set(["succeeded", "failed", "canceled", "cancelled"]);

/**
 * Waits for a long-running operation: `responseOrPath` is what put/post/delete resolved to
 * (its Azure-AsyncOperation/Location is remembered) or an operation URL. Resolves to the final
 * status body; rejects with an ArmError when the operation failed.
 */
async function wait(responseOrPath, { interval = 1000 } = {}) {
  const url = typeof responseOrPath === "string" ? responseOrPath : responseOrPath && responseOrPath._operation;
  if (!url) return responseOrPath;
  for (;;) {
    const response = await raw("GET", urlFor(url));
    if (response.status === 202) { await sleep(interval); continue; }
    const body = await parsed(response);
    const status = String((body && (body.status || (body.properties && body.properties.provisioningState))) || "succeeded").toLowerCase();
    if (TERMINAL.has(status)) {
      if (status !== "succeeded") throw new ArmError(200, (body && body.error) || { code: status, message: `The operation ${status}.` });
      return body;
    }
    await sleep(interval);
  }
}

export const arm = {
  get,
  put: (path, body) => send("PUT", path, body),
  patch: (path, body) => send("PATCH", path, body),
  post: (path, body) => send("POST", path, body === undefined ? {} : body),
  delete: (path) => send("DELETE", path),
  list,
  page,
  wait,
  raw,
  urlFor,
};

export default arm;

// A storage account's containers and blobs. Listing them is Blob storage's data plane, which
// takes an account key, not a token: the page asks for the keys (listKeys, which Readers may not
// do) and signs a short-lived, list-only account SAS with Web Crypto (the key never leaves the
// page). Without the keys the user names a container and Galley's ARM-side list
// (/blob/{account}/{container}, with the token) shows its VHDs.
import { el, clear, heading, table, button, errorBox, loading, formatBytes, uid } from "../ui.js";

const SAS_VERSION = "2021-08-06";

function base64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

async function listSas(account, key) {
  const expiry = new Date(Date.now() + 15 * 60_000).toISOString().replace(/\.\d+Z$/, "Z");
  const fields = { sp: "rl", ss: "b", srt: "sc", st: "", se: expiry, sip: "", spr: "https,http", sv: SAS_VERSION };
  const toSign = `${account}\n${["sp", "ss", "srt", "st", "se", "sip", "spr", "sv"].map((f) => `${fields[f]}\n`).join("")}\n`;
  const secret = Uint8Array.from(atob(key), (c) => c.charCodeAt(0));
  const hmac = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const signature = base64(await crypto.subtle.sign("HMAC", hmac, new TextEncoder().encode(toSign)));
  const query = new URLSearchParams({ sv: SAS_VERSION, ss: "b", srt: "sc", sp: "rl", se: expiry, spr: "https,http", sig: signature });
  return query.toString();
}

/** A list-only SAS for the account, or null when the user may not read its keys. */
async function sasFor(ctx, accountId, account) {
  const keys = await ctx.arm.post(`${accountId}/listKeys`).catch(() => null);
  const key = ((keys && keys.keys) || [])[0];
  return key ? listSas(account, key.value) : null;
}

async function listXml(url) {
  const answer = await fetch(url);
  if (!answer.ok) throw new Error(`The storage service answered ${answer.status}.`);
  return new DOMParser().parseFromString(await answer.text(), "application/xml");
}

async function containerNames(account, sas) {
  const xml = await listXml(`/${account}?comp=list&${sas}`);
  return [...xml.querySelectorAll("Containers > Container > Name")].map((n) => n.textContent);
}

async function blobsIn(ctx, account, container, sas) {
  if (!sas) {
    const body = await ctx.arm.get(`/blob/${account}/${encodeURIComponent(container)}`);
    return (body.value || []).map((b) => ({ name: b.name, size: b.size, type: "PageBlob" }));
  }
  const xml = await listXml(`/${account}/${encodeURIComponent(container)}?restype=container&comp=list&${sas}`);
  return [...xml.querySelectorAll("Blobs > Blob")].map((b) => ({
    name: b.querySelector("Name").textContent,
    size: Number((b.querySelector("Properties > Content-Length") || {}).textContent || 0),
    type: (b.querySelector("Properties > BlobType") || {}).textContent || "",
  }));
}

export function renderBlobBrowser(ctx, resource) {
  const account = resource.name;
  const inputId = uid("container");
  const input = el("input", { id: inputId, type: "text", value: "vhds" });
  const containers = el("div", {});
  const blobs = el("div", {});
  const sas = sasFor(ctx, resource.id, account);
  const showBlobs = async (container) => {
    clear(blobs, loading());
    try {
      const found = await blobsIn(ctx, account, container, await sas);
      clear(blobs, table([
        { title: "Blob", value: (b) => b.name },
        { title: "Type", value: (b) => b.type },
        { title: "Size", value: (b) => formatBytes(b.size) },
      ], found, { caption: `Blobs in ${container}`, empty: "No blobs in this container." }));
    } catch (error) { clear(blobs, errorBox(error)); }
  };
  sas.then((signed) => (signed ? containerNames(account, signed) : null)).then((names) => {
    if (!names) { clear(containers, el("p", { class: "muted" }, "Your role does not reach the account's keys: name a container to list its blobs.")); return; }
    clear(containers, table([{ title: "Container", value: (name) => button(name, () => showBlobs(name), { kind: "link" }) }],
      names, { caption: "Containers", empty: "No containers." }));
  }).catch((error) => clear(containers, errorBox(error)));
  return el("section", { "aria-label": "Containers and blobs" }, heading("Containers and blobs", 2), containers,
    el("div", { class: "toolbar" }, el("div", { class: "field inline" }, el("label", { for: inputId }, "Container"), input),
      button("List blobs", () => showBlobs(input.value.trim()))), blobs);
}

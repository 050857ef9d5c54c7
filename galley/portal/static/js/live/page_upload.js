// Sending a file to a disk's Write SAS the way `galley disk upload` and AzCopy do: Put Page
// requests of at most 4 MiB, each inside one 4 MiB cell of the blob, covering only the cell's
// non-zero pages (an all-zero cell is not sent). When writes fail (a dropped connection, a 5xx)
// the uploader waits (growing back-off), asks Get Page Ranges what the blob holds, and sends only
// the non-zero pages still missing. The SAS is the credential: these requests carry no token.

import { SECTOR } from "./disk_image.js";

export const CELL = 4 * 1024 * 1024;
const BLOB_VERSION = "2021-08-06";
const WRITERS = 4;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const GIVE_UP_AFTER = 12; // failed rounds in a row without any progress

export class UploadFailed extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The SAS URL as this page can reach it: Galley signs it for the origin the request came to, but
// behind a proxy that may differ from the browser's; the blob path is served at the same origin.
export function reachable(sasUrl) {
  const url = new URL(sasUrl, location.href);
  if (url.origin !== location.origin) {
    const same = new URL(url.pathname + url.search, location.origin);
    return same.toString();
  }
  return url.toString();
}

function withParams(sasUrl, params) {
  const url = new URL(sasUrl);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

// [first, end) of the non-zero 512-byte pages of `bytes` (null when all zero), relative to it.
function dataSpan(bytes) {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  const perPage = SECTOR >> 2;
  let first = -1, last = -1;
  for (let page = 0; page * perPage < words.length; page++) {
    const start = page * perPage;
    for (let i = start; i < start + perPage; i++) {
      if (words[i] !== 0) { if (first < 0) first = page; last = page; break; }
    }
  }
  return first < 0 ? null : [first * SECTOR, (last + 1) * SECTOR];
}

// The parts of [start, end) that no [a, b) of `written` (sorted) covers.
export function gaps(written, start, end) {
  const out = [];
  let position = start;
  for (const [a, b] of written) {
    if (b <= position) continue;
    if (a >= end) break;
    if (a > position) out.push([position, a]);
    position = Math.max(position, b);
    if (position >= end) break;
  }
  if (position < end) out.push([position, end]);
  return out;
}

export class PageUploader {
  // source: a Blob (the file); extra: bytes that follow it in the blob (a raw image's VHD footer).
  constructor(sasUrl, source, extra, { onProgress = () => {}, onStatus = () => {} } = {}) {
    this.url = reachable(sasUrl);
    this.source = source;
    this.extra = extra || new Uint8Array(0);
    this.size = source.size + this.extra.length;
    this.onProgress = onProgress;
    this.onStatus = onStatus;
    this.done = 0;      // bytes of the blob handled: sent and acknowledged, or found to be zeros
    this.sent = 0;      // bytes acknowledged by Put Page
    this.writes = 0;
  }

  async bytes(start, end) {
    const fromFile = start < this.source.size
      ? new Uint8Array(await this.source.slice(start, Math.min(end, this.source.size)).arrayBuffer())
      : new Uint8Array(0);
    if (end <= this.source.size) return fromFile;
    const out = new Uint8Array(end - start);
    out.set(fromFile, 0);
    const from = Math.max(start, this.source.size) - this.source.size;
    out.set(this.extra.subarray(from, end - this.source.size), fromFile.length);
    return out;
  }

  // The Put Pages a cell needs, given what the blob holds (`written`, or null: nothing known).
  async cellWrites(index, written) {
    const start = index * CELL, end = Math.min(this.size, start + CELL);
    const spans = written ? gaps(written, start, end) : [[start, end]];
    const out = [];
    for (const [a, b] of spans) {
      const bytes = await this.bytes(a, b);
      const span = dataSpan(bytes);
      if (span) out.push({ offset: a + span[0], data: bytes.subarray(span[0], span[1]) });
    }
    return out;
  }

  async putPage(offset, data) {
    const response = await fetch(withParams(this.url, { comp: "page" }), {
      method: "PUT", body: data,
      headers: { "x-ms-page-write": "update", "x-ms-range": `bytes=${offset}-${offset + data.length - 1}`,
                 "x-ms-version": BLOB_VERSION, "Content-Type": "application/octet-stream" },
    });
    if (!response.ok) throw await blobError(response);
    this.writes += 1;
  }

  // Every [start, end) the blob holds data in (Get Page Ranges, following NextMarker).
  async pageRanges() {
    const spans = [];
    let marker = "";
    do {
      const response = await fetch(withParams(this.url, { comp: "pagelist", ...(marker ? { marker } : {}) }),
                                   { headers: { "x-ms-version": BLOB_VERSION } });
      if (!response.ok) throw await blobError(response);
      const xml = new DOMParser().parseFromString(await response.text(), "application/xml");
      for (const range of xml.getElementsByTagName("PageRange")) {
        const start = Number(range.getElementsByTagName("Start")[0].textContent);
        const end = Number(range.getElementsByTagName("End")[0].textContent) + 1;
        spans.push([start, end]);
      }
      marker = (xml.getElementsByTagName("NextMarker")[0]?.textContent || "").trim();
    } while (marker);
    return spans.sort((x, y) => x[0] - y[0]);
  }

  // Send cell `index` (or its missing pages); false when a write failed.
  async sendCell(index, written) {
    const cellSize = Math.min(this.size, (index + 1) * CELL) - index * CELL;
    try {
      for (const { offset, data } of await this.cellWrites(index, written)) {
        await this.putPage(offset, data);
        this.sent += data.length;
      }
    } catch (error) {
      if (error instanceof UploadFailed) throw error;
      this.lastError = error;
      return false;
    }
    this.done += cellSize;
    this.onProgress(this);
    return true;
  }

  async sendCells(indexes, written) {
    const failed = [];
    let next = 0;
    let stopped = false; // a refusal (UploadFailed) stops every writer, not only the one that met it
    const worker = async () => {
      while (next < indexes.length && !stopped) {
        const index = indexes[next++];
        try {
          if (!(await this.sendCell(index, written))) failed.push(index);
        } catch (error) {
          stopped = true;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITERS, indexes.length) }, worker));
    return failed.sort((a, b) => a - b);
  }

  // Upload everything; `written` (from Get Page Ranges) when resuming an earlier upload.
  async run(written = null) {
    let pending = Array.from({ length: Math.ceil(this.size / CELL) }, (_, i) => i);
    let rounds = 0;
    while (pending.length) {
      const before = this.done;
      pending = await this.sendCells(pending, written);
      if (!pending.length) break;
      rounds = this.done > before ? 1 : rounds + 1;
      if (rounds > GIVE_UP_AFTER) {
        throw new UploadFailed(`The upload stopped: ${this.lastError?.message || "the blob endpoint did not answer"}. ` +
          "Choose the same file again to resume it.");
      }
      const wait = BACKOFF_MS[Math.min(rounds - 1, BACKOFF_MS.length - 1)];
      this.onStatus(`Connection lost (${this.lastError?.message || "no answer"}); resuming in ${wait / 1000} s…`);
      await sleep(wait);
      written = await this.pageRangesOrNull();
      if (written) this.onStatus(`Resuming: sending the ${pending.length} missing piece(s)…`);
    }
    this.onStatus("");
  }

  async pageRangesOrNull() {
    try {
      return await this.pageRanges();
    } catch (error) {
      if (error instanceof UploadFailed) throw error;
      this.lastError = error;
      return null;
    }
  }
}

// A non-2xx blob answer: transient ones are retried, the others stop the upload.
async function blobError(response) {
  const text = await response.text().catch(() => "");
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] || response.headers.get("x-ms-error-code") || "";
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] || response.statusText;
  const described = `${response.status} ${code}: ${message}`.trim();
  if ([408, 429, 500, 502, 503, 504].includes(response.status)) return new Error(described);
  return new UploadFailed(`The blob endpoint refused a request: ${described}`);
}

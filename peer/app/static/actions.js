/**
 * What people do on the page: download a payload (to this peer, then to the browser
 * under its name), upload a file or text, scan the LAN, log in, copy a link. Each
 * calls `api.js` and writes the signals of `state.js`.
 *
 * @module
 */
import { signal } from "./html.js";
import * as api from "./api.js";
import { messageOf } from "./api.js";
import { fileName, fmtBytes, plural } from "./format.js";
import {
  chunkSources,
  clearError,
  downloads,
  mapFor,
  needLogin,
  payloadInfo,
  payloadsPoll,
  plainIds,
  refreshAll,
  showError,
  statusPoll,
} from "./state.js";

/** @typedef {import("./types.js").Download} Download */

/** Finished downloads kept on the page. */
const MAX_DOWNLOADS = 6;

// ---- downloads ----

/** Replaces one download's entry (a new Map, so views update). */
function putDownload(/** @type {Download} */ d) {
  const next = new Map(downloads.value);
  next.delete(d.id);
  next.set(d.id, d);
  const finished = [...next.values()].filter((x) => !x.running);
  const dropped = finished.slice(0, Math.max(0, next.size - MAX_DOWNLOADS));
  for (const old of dropped) next.delete(old.id);
  downloads.value = next;
  // Which source each piece came from is kept for the downloads still listed only.
  if (dropped.some((old) => chunkSources.value.has(old.id))) {
    chunkSources.value = new Map([...chunkSources.value].filter(([id]) => next.has(id)));
  }
}

/** Saves a complete payload to the browser under its name (one `<a download>` click). */
export function saveToBrowser(/** @type {string} */ id) {
  const a = document.createElement("a");
  a.href = api.contentUrl(id);
  a.download = fileName(payloadInfo(id).name, id);
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
}

/**
 * Has this peer download a payload, showing its progress; with `save`, the browser
 * then saves it under the payload's name, so one click gets the file.
 */
export async function startDownload(
  /** @type {string} */ id,
  { save = true } = {},
) {
  if (downloads.value.get(id)?.running) return;
  /** @type {Download} */
  let d = { id, running: true, save, bySource: new Map() };
  putDownload(d);
  chunkSources.value = new Map(chunkSources.value).set(id, new Map());
  if (!mapFor.value) mapFor.value = id;
  // Chunk events come fast: the page shows them at most every 150 ms.
  /** @type {Map<number, string>} */
  const sources = new Map();
  let flush = 0;
  const show = () => {
    flush = 0;
    d = { ...d, bySource: new Map(d.bySource) };
    putDownload(d);
    chunkSources.value = new Map(chunkSources.value).set(id, new Map(sources));
  };
  try {
    const done = await api.download(id, (e) => {
      if (e.type === "progress") {
        d.progress = {
          chunks: e.chunks,
          done: e.done,
          size: e.size,
          bytes: e.bytes,
          fetchedBytes: e.fetchedBytes,
          seconds: e.seconds,
          sources: e.sources,
        };
      } else if (e.type === "chunk" && typeof e.source === "string") {
        d.bySource.set(e.source, (d.bySource.get(e.source) ?? 0) + 1);
        sources.set(Number(e.index), e.source);
      }
      if (!flush) flush = setTimeout(show, 150);
    });
    clearTimeout(flush);
    show();
    d = { ...d, running: false, result: done };
    putDownload(d);
    clearError("download");
    if (save) saveToBrowser(id);
  } catch (err) {
    clearTimeout(flush);
    d = { ...d, running: false, error: plainIds(messageOf(err)) };
    putDownload(d);
    showError(
      `Download of ${payloadInfo(id).name || id.slice(0, 12)} failed: ${messageOf(err)}`,
      "download",
    );
  } finally {
    payloadsPoll.soon(0);
    statusPoll.soon(0);
  }
}

/**
 * Turns what someone typed into a payloadId by asking the peer, which resolves a whole
 * id, a unique prefix of 6+ hex digits or a unique name (among what it holds and the
 * network knows). `{ error }` carries the peer's words when it cannot.
 */
export async function resolvePayloadId(/** @type {string} */ raw) {
  const v = raw.trim();
  if (v === "") {
    return { error: "Enter a payloadId (64 hex digits), its first 6 or more, or a name" };
  }
  try {
    return { id: (await api.resolvePayload(v)).payloadId };
  } catch (err) {
    return { error: plainIds(messageOf(err)) };
  }
}

// ---- upload ----

/** The upload under way or last done: `phase` is `idle`, `sending`, `storing`, `done`, `failed`. */
export const uploadState = signal({
  phase: "idle",
  /** Percent of the bytes sent. */
  sent: 0,
  /** What the peer is doing, in words. */
  step: "",
  what: "",
  /** @type {Record<string, any> | null} */
  result: null,
  name: "",
  error: "",
});

/**
 * Uploads `body` as a payload named `name`, then gives it `tags` (for search); resolves
 * with whether it worked.
 */
export async function uploadBody(
  /** @type {Blob | Uint8Array} */ body,
  /** @type {string} */ name,
  /** @type {string} */ what,
  /** @type {string[]} */ tags = [],
) {
  if (
    uploadState.value.phase === "sending" ||
    uploadState.value.phase === "storing"
  ) {
    showError("An upload is already running; wait for it to finish", "upload");
    return false;
  }
  const base = { sent: 0, step: "", what, result: null, name, error: "" };
  uploadState.value = { ...base, phase: "sending" };
  try {
    const done = await api.upload(body, name, {
      onSent: (sent) => {
        const s = uploadState.value;
        uploadState.value = {
          ...s,
          sent,
          phase: sent >= 100 ? "storing" : "sending",
        };
      },
      onEvent: (e) => {
        const step = e.type === "stored"
          ? `Stored ${fmtBytes(e.size)} in ${plural(e.chunks, "piece")}; pushing copies…`
          : e.type === "replicated"
          ? `Pushing copies to other peers: ${e.done} of ${e.chunks} pieces`
          : "";
        if (step) {
          uploadState.value = { ...uploadState.value, phase: "storing", step };
        }
      },
    });
    if (tags.length > 0) await api.setMeta(String(done.payloadId), { tags });
    uploadState.value = { ...base, sent: 100, phase: "done", result: done };
    clearError("upload");
    payloadsPoll.soon(0);
    statusPoll.soon(0);
    return true;
  } catch (err) {
    uploadState.value = { ...base, phase: "failed", error: messageOf(err) };
    showError(`Upload failed: ${messageOf(err)}`, "upload");
    return false;
  }
}

// ---- peers ----

/** The last LAN scan: running, its report or its error. */
export const scanState = signal({
  running: false,
  /** @type {import("./types.js").DiscoveryReport | null} */
  report: null,
  error: "",
  range: "",
});

/** Scans a LAN range (empty: the peer's own subnets). */
export async function scanLan(/** @type {string} */ range) {
  scanState.value = { running: true, report: null, error: "", range };
  try {
    const report = await api.discover(range);
    scanState.value = { running: false, report, error: "", range };
    clearError("scan");
  } catch (err) {
    scanState.value = {
      running: false,
      report: null,
      error: messageOf(err),
      range,
    };
    showError(`Scan failed: ${messageOf(err)}`, "scan");
  }
}

// ---- login ----

/** Sends the owner's token; on success the page reloads what it shows. */
export async function login(/** @type {string} */ token) {
  await api.login(token);
  needLogin.value = false;
  clearError();
  refreshAll();
}

// ---- clipboard ----

/** Copies text; resolves with whether it worked (with a fallback for http pages). */
export async function copyText(/** @type {string} */ text) {
  if (navigator.clipboard && globalThis.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // The fallback below.
    }
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.readOnly = true;
  ta.style.setProperty("position", "fixed");
  ta.style.setProperty("top", "-1000px");
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  if (!ok) showError(`Could not copy to the clipboard; here it is: ${text}`);
  return ok;
}

/** The link that opens this page on a payload (`#/payloads/ID`). */
export function shareLink(/** @type {string} */ id) {
  return `${location.origin}${location.pathname}#/payloads/${id}`;
}

/**
 * The page's state, as signals: what the peer said (status, peers, payloads here and on
 * the network, activity), what this page does (downloads, the upload), the route
 * (`#/payloads/ID`…) and the error shown. Views read these; `actions.js` and the
 * pollers here write them.
 *
 * @module
 */
import { computed, signal } from "./html.js";
import * as api from "./api.js";
import { messageOf } from "./api.js";

/** @typedef {import("./types.js").Status} Status */
/** @typedef {import("./types.js").Peer} Peer */
/** @typedef {import("./types.js").StoredPayload} StoredPayload */
/** @typedef {import("./types.js").NetworkPayload} NetworkPayload */
/** @typedef {import("./types.js").Download} Download */
/** @typedef {import("./types.js").PayloadRow} PayloadRow */
/** @typedef {import("./types.js").ActivityRecord} ActivityRecord */

/** Activity records kept (newest first). */
export const MAX_ACTIVITY = 500;

/** `_p2p/status`, once known. */
export const self = signal(/** @type {Status | null} */ (null));
/** `online`, `peer unreachable`, … with the reason as `detail`. */
export const conn = signal({ ok: false, text: "connecting…", detail: "" });
/** Known peers by peerId. */
export const peers = signal(/** @type {Map<string, Peer>} */ (new Map()));
/** Payloads in this peer's store by id. */
export const local = signal(
  /** @type {Map<string, StoredPayload>} */ (new Map()),
);
/** Payloads known on the network by id. */
export const network = signal(
  /** @type {Map<string, NetworkPayload>} */ (new Map()),
);
/** Why the payload lists are incomplete, in words ("" when they are not). */
export const payloadsNote = signal("");
/** Downloads started from this page, by payloadId (a new Map on every change). */
export const downloads = signal(
  /** @type {Map<string, Download>} */ (new Map()),
);
/** Which source each chunk came from, per payload, as this page saw downloads. */
export const chunkSources = signal(
  /** @type {Map<string, Map<number, string>>} */ (new Map()),
);
/** The activity records seen, newest first. */
export const activity = signal(/** @type {ActivityRecord[]} */ ([]));
/** The event stream's state: `connecting…`, `live`, `reconnecting…`, `disconnected`. */
export const eventsState = signal("connecting…");
/** The error banner: its text, what it is about and when (null: none). */
export const error = signal(
  /** @type {{ message: string, topic: string, time: string } | null} */ (null),
);
/** Whether the control API wants the owner's token. */
export const needLogin = signal(false);
/** The payload whose chunk map is shown. */
export const mapFor = signal(/** @type {string | null} */ (null));

/**
 * The route from the URL's hash: `#/payloads` (the default), `#/payloads/ID` (that
 * payload opened), `#/peers`, `#/activity`, `#/peer` (this peer's diagnostics).
 */
export function parseRoute(/** @type {string} */ hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  const tab = ["payloads", "peers", "activity", "peer"].includes(parts[0]) ? parts[0] : "payloads";
  const id = tab === "payloads" && parts[1] ? decodeURIComponent(parts[1]).toLowerCase() : null;
  return { tab, id };
}
export const route = signal(parseRoute(globalThis.location?.hash ?? ""));

/**
 * A message with its ids in words: a payloadId becomes the payload's name (or its
 * first 12 digits), a peerId the peer's name (or its first 8).
 */
export function plainIds(/** @type {string} */ text) {
  return text
    .replace(/'?\b([0-9a-f]{64})\b'?/g, (_, id) => `'${payloadInfo(id).name || id.slice(0, 12)}'`)
    .replace(/'?\b([0-9a-f]{40})\b'?/g, (_, id) => `'${labelOf(id)}'`);
}

/** Shows an error; `topic` names the action it is about, so its success clears it. */
export function showError(/** @type {unknown} */ err, topic = "") {
  const message = plainIds(messageOf(err));
  error.value = { message, topic, time: new Date().toISOString() };
  return message;
}

/** Hides the error; with a topic, only one about that topic. */
export function clearError(
  /** @type {string | undefined} */ topic = undefined,
) {
  if (topic === undefined || error.value?.topic === topic) error.value = null;
}

/** A readable name for a peerId (or `tracker`, `local`). */
export function labelOf(
  /** @type {string} */ id,
  /** @type {string | undefined} */ name = "",
) {
  if (id === "tracker") return "the tracker";
  if (id === "local") return "this peer's store";
  const me = self.value;
  if (me && id === me.peerId) return `${me.name || id.slice(0, 8)} (this peer)`;
  return name || peers.value.get(id)?.name || id.slice(0, 8);
}

/** A payload's name, size and chunk count from what is known here or on the network. */
export function payloadInfo(/** @type {string} */ id) {
  const l = local.value.get(id);
  const n = network.value.get(id);
  return {
    name: l?.name || n?.name || "",
    size: l?.size ?? n?.size,
    chunks: l?.chunks ?? n?.chunks,
  };
}

/**
 * One row per payload, here or on the network, newest first. A running download's
 * progress is the row's (so the row and the download card say the same), and a
 * finished one counts as complete until the next list says so too.
 */
export const payloadRows = computed(() => {
  const ids = new Set([...local.value.keys(), ...network.value.keys()]);
  for (const [id, d] of downloads.value) {
    if (d.progress || d.result) ids.add(id);
  }
  /** @type {PayloadRow[]} */
  const rows = [];
  for (const id of ids) {
    const l = local.value.get(id);
    const n = network.value.get(id);
    const d = downloads.value.get(id);
    const chunks = l?.chunks ?? n?.chunks ?? d?.progress?.chunks ?? 0;
    let held = l?.held ?? 0;
    let complete = l?.complete ?? false;
    // While it runs, the download's own count: the download card shows the same.
    if (d?.running && d.progress) held = d.progress.done;
    if (d?.result && !d.running) {
      held = chunks;
      complete = true;
    }
    rows.push({
      id,
      name: l?.name || n?.name || "",
      size: l?.size ?? n?.size ?? d?.progress?.size ?? 0,
      chunks,
      held,
      complete,
      here: l !== undefined || held > 0,
      // Put or got by the owner here (the store says so), or a download from this page.
      pinned: (l?.pinned ?? false) || d !== undefined,
      addedAt: l?.addedAt ?? 0,
      holders: n?.holders ?? [],
      download: d,
    });
  }
  return rows.sort((a, b) =>
    b.addedAt - a.addedAt || b.holders.length - a.holders.length ||
    a.id.localeCompare(b.id)
  );
});

// ---- polling ----

/**
 * Runs `fn` now and then every `everyMs`, never two at once; `soon()` asks for an
 * early run (coalesced, at most one a second).
 */
function poller(
  /** @type {() => Promise<void>} */ fn,
  /** @type {number} */ everyMs,
) {
  let timer = 0;
  let running = false;
  let again = false;
  let lastEnd = 0;
  async function run() {
    clearTimeout(timer);
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      console.warn(err);
    } finally {
      running = false;
      lastEnd = performance.now();
    }
    timer = setTimeout(run, again ? 1000 : everyMs);
    again = false;
  }
  return {
    start: run,
    soon(delay = 250) {
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(
        run,
        Math.max(delay, 1000 - (performance.now() - lastEnd)),
      );
    },
  };
}

async function refreshStatus() {
  try {
    self.value = await api.getStatus();
    conn.value = {
      ok: true,
      text: "online",
      detail: new Date().toLocaleTimeString(),
    };
  } catch (err) {
    const e = /** @type {api.ApiError} */ (err);
    const text = e.status === 401
      ? "not logged in"
      : e.code === "network"
      ? "peer unreachable"
      : "status failed";
    conn.value = { ok: false, text, detail: messageOf(err) };
    throw err;
  }
}

async function refreshPeers() {
  const list = await api.getPeers();
  peers.value = new Map(list.map((p) => [p.peerId, p]));
}

async function refreshPayloads() {
  const [l, n] = await Promise.allSettled([
    api.getPayloads(),
    api.getNetworkPayloads(),
  ]);
  const notes = [];
  if (l.status === "fulfilled") {
    local.value = new Map(l.value.map((p) => [p.payloadId, p]));
  } else notes.push(`Could not list the payloads here: ${messageOf(l.reason)}`);
  if (n.status === "fulfilled") {
    network.value = new Map(n.value.payloads.map((p) => [p.payloadId, p]));
    const missing = n.value.errors.length;
    if (missing) {
      notes.push(`${missing} of the network's sources did not answer`);
    }
  } else {notes.push(
      `The network's list is unavailable: ${messageOf(n.reason)}`,
    );}
  payloadsNote.value = notes.join(" · ");
}

export const statusPoll = poller(refreshStatus, 5000);
export const peersPoll = poller(refreshPeers, 5000);
export const payloadsPoll = poller(refreshPayloads, 3000);

/** Refreshes everything soon (after a login, or when the page is shown again). */
export function refreshAll() {
  statusPoll.soon(0);
  peersPoll.soon(0);
  payloadsPoll.soon(0);
}

/** Adds an activity record (once) and refreshes the sections it concerns. */
export function addRecord(/** @type {ActivityRecord} */ r) {
  const list = activity.value;
  if (list.some((x) => x.id === r.id && x.ts === r.ts)) return;
  activity.value = [r, ...list].slice(0, MAX_ACTIVITY);
  const t = r.type;
  if (
    t.startsWith("peer.") || t.startsWith("discover.") ||
    t.startsWith("exchange")
  ) {
    peersPoll.soon();
  }
  if (
    t.startsWith("payload.") || t.startsWith("download.") ||
    t.startsWith("offer.")
  ) {
    payloadsPoll.soon();
    statusPoll.soon();
  }
  if (t.startsWith("tracker.")) statusPoll.soon();
}

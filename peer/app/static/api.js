/**
 * The peer's control API as the page calls it: every request goes to a RELATIVE URL
 * (`_p2p/status`), so the page works both at `/` of a peer and under
 * `/_p2p/peers/{peerId}/` of any other peer.
 *
 * Every answer is checked before use, with `answers.js` (a mirror of the part of
 * `proto/control.ts` the page reads).
 *
 * @module
 */

import {
  ApiError,
  check,
  checkEach,
  EventLines,
  HOLDER,
  isKind,
  messageOf,
  MISSING_PEER,
  NETWORK,
  PEER,
  SEARCH_HIT,
  STATUS,
  STORED,
  WHERE_ROW,
} from "./answers.js";

export { ApiError, messageOf };
export { PAYLOAD_ID, PEER_ID } from "./answers.js";

/** @type {() => void} */
let onUnauthorized = () => {};

/** Sets what happens when the control API answers 401 (the page asks for the token). */
export function setUnauthorizedHandler(/** @type {() => void} */ fn) {
  onUnauthorized = fn;
}

// ---- calls ----

/** The error an answer that is not 2xx carries (`{"error":{"code","message"}}`). */
async function errorFrom(/** @type {Response} */ res) {
  const text = await res.text().catch(() => "");
  try {
    const j = JSON.parse(text);
    if (j && j.error && typeof j.error.message === "string") {
      return new ApiError(
        j.error.message,
        res.status,
        String(j.error.code ?? ""),
      );
    }
  } catch {
    // Not JSON: said below.
  }
  const plain = text.trim();
  const shown = plain && plain.length <= 300 && !plain.startsWith("<") ? `: ${plain}` : "";
  return new ApiError(`The peer refused the request${shown}`, res.status);
}

/** fetch() on a relative URL; rejects with an ApiError on network failure or non-2xx. */
async function call(
  /** @type {string} */ path,
  /** @type {RequestInit} */ init = {},
) {
  let res;
  try {
    res = await fetch(path, { cache: "no-store", ...init });
  } catch (err) {
    throw new ApiError(
      `Cannot reach the peer (${messageOf(err)})`,
      0,
      "network",
    );
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401) onUnauthorized();
    throw err;
  }
  return res;
}

/** GET of a JSON answer. */
async function getJson(/** @type {string} */ path) {
  const res = await call(path, { headers: { accept: "application/json" } });
  try {
    return await res.json();
  } catch (err) {
    throw new ApiError(
      `The peer's answer to '${path}' is not JSON (${messageOf(err)})`,
    );
  }
}

/** `GET _p2p/status`. @returns {Promise<import("./types.js").Status>} */
export async function getStatus() {
  return check(await getJson("_p2p/status"), STATUS, "status");
}

/** `GET _p2p/peers`. @returns {Promise<import("./types.js").Peer[]>} */
export async function getPeers() {
  const j = check(await getJson("_p2p/peers"), { peers: "array" }, "peer list");
  return /** @type {any} */ (checkEach(
    /** @type {any} */ (j).peers,
    PEER,
    "peer",
  ));
}

/** `GET _p2p/payloads`. @returns {Promise<import("./types.js").StoredPayload[]>} */
export async function getPayloads() {
  const j = check(
    await getJson("_p2p/payloads"),
    { payloads: "array" },
    "payload list",
  );
  return /** @type {any} */ (checkEach(
    /** @type {any} */ (j).payloads,
    STORED,
    "payload",
  ));
}

/**
 * `GET _p2p/payloads/:ref`: the peer resolves what was typed (a whole id, 6+ of its
 * first hex digits, or a unique name; `peer/control_ids.ts`) and answers its id.
 * @returns {Promise<{ payloadId: string, name?: string }>}
 */
export async function resolvePayload(/** @type {string} */ ref) {
  return check(
    await getJson(`_p2p/payloads/${encodeURIComponent(ref)}`),
    { payloadId: "payloadId", name: "string?" },
    "payload",
  );
}

/**
 * `PUT _p2p/search/meta/:ref`: a payload's tags (and type) for search.
 * @returns {Promise<{ tags?: string[], type?: string }>}
 */
export async function setMeta(
  /** @type {string} */ ref,
  /** @type {{ tags?: string[], type?: string }} */ meta,
) {
  const res = await call(`_p2p/search/meta/${encodeURIComponent(ref)}`, {
    method: "PUT",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(meta),
  });
  return check(await res.json().catch(() => null), { tags: "array?" }, "metadata");
}

/**
 * `GET _p2p/search?q=&limit=`: this peer's index and every live peer's, merged.
 * @returns {Promise<import("./types.js").SearchAnswer>}
 */
export async function search(
  /** @type {string} */ q,
  /** @type {number} */ limit,
  /** @type {AbortSignal} */ signal,
) {
  const path = `_p2p/search?${new URLSearchParams({ q, limit: String(limit) })}`;
  const res = await call(path, { headers: { accept: "application/json" }, signal });
  const j = /** @type {any} */ (check(
    await res.json().catch(() => null),
    { query: "string", hits: "array", missing: "array" },
    "search answer",
  ));
  checkEach(j.hits, SEARCH_HIT, "search hit");
  for (const h of j.hits) {
    checkEach(h.holders, HOLDER_ID, "holder");
    checkEach(h.snippet, { text: "string" }, "snippet");
  }
  checkEach(j.missing, MISSING_PEER, "missing peer");
  return j;
}

/** A holder of a search hit. */
const HOLDER_ID = /** @type {const} */ ({ peerId: "peerId", name: "string?" });

/**
 * `GET _p2p/network/payloads`.
 * @returns {Promise<{payloads: import("./types.js").NetworkPayload[], errors: {source: string, message: string}[]}>}
 */
export async function getNetworkPayloads() {
  const j = /** @type {any} */ (check(
    await getJson("_p2p/network/payloads"),
    { payloads: "array", errors: "array" },
    "network list",
  ));
  checkEach(j.payloads, NETWORK, "network payload");
  for (const p of j.payloads) checkEach(p.holders, HOLDER, "holder");
  checkEach(
    j.errors,
    { source: "string", message: "string" },
    "network list error",
  );
  return j;
}

/** `GET _p2p/payloads/ID/where`. @returns {Promise<import("./types.js").Where>} */
export async function getWhere(/** @type {string} */ id) {
  const j = /** @type {any} */ (check(
    await getJson(`_p2p/payloads/${encodeURIComponent(id)}/where`),
    { chunks: "number", rows: "array" },
    "chunk map",
  ));
  checkEach(j.rows, WHERE_ROW, "chunk map row");
  return j;
}

/** `GET _p2p/log?type=`: the newest records of a type (at most 1000). */
export async function getLog(/** @type {string} */ type) {
  const j = /** @type {any} */ (check(
    await getJson(`_p2p/log?type=${encodeURIComponent(type)}&limit=1000`),
    { records: "array" },
    "log",
  ));
  return /** @type {import("./types.js").ActivityRecord[]} */ (
    checkEach(
      j.records,
      { id: "number", ts: "string", type: "string" },
      "log record",
    )
  );
}

/** `POST _p2p/discover`: a LAN scan of `range` (empty: the peer's own subnets). */
export async function discover(/** @type {string} */ range) {
  const res = await call("_p2p/discover", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(range ? { range } : {}),
  });
  return /** @type {import("./types.js").DiscoveryReport} */ (check(
    await res.json().catch(() => null),
    { found: "array", rejected: "array?", stale: "array?", seconds: "number" },
    "scan report",
  ));
}

/** `POST _p2p/login` with the owner's token: the peer answers with its cookie. */
export async function login(/** @type {string} */ token) {
  const res = await fetch("_p2p/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!res.ok) throw await errorFrom(res);
}

/** The URL of a payload's bytes, as an attachment under its name. */
export function contentUrl(/** @type {string} */ id) {
  return `_p2p/payloads/${encodeURIComponent(id)}/content?download=1`;
}

/**
 * `POST _p2p/downloads/ID`: the peer fetches the payload into its store. Calls
 * `onEvent` with each `progress` and `chunk` event; resolves with the `done` event.
 */
export async function download(
  /** @type {string} */ id,
  /** @type {(e: Record<string, any>) => void} */ onEvent,
) {
  const res = await call(`_p2p/downloads/${encodeURIComponent(id)}`, {
    method: "POST",
    headers: { accept: "application/x-ndjson" },
  });
  if (!res.body) throw new ApiError("The peer's answer has no body");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const lines = new EventLines();
  try {
    for (;;) {
      /** @type {ReadableStreamReadResult<string>} */
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new ApiError(
          `The connection to the peer was lost (${messageOf(err)})`,
        );
      }
      const events = chunk.done ? lines.end() : lines.push(chunk.value);
      for (const e of events) if (e.type !== "done") onEvent(e);
      if (lines.done) {
        return check(lines.done, { size: "number", bytes: "number" }, "result");
      }
      if (chunk.done) {
        throw new ApiError(
          "The peer's answer ended before it said it was done",
        );
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/**
 * `POST _p2p/payloads?name=`: uploads `body` with XMLHttpRequest, whose upload
 * progress gives the percentage sent (`onSent(0..100)`); the answer's NDJSON events
 * (`stored`, `replicated`) go to `onEvent` as they arrive. Resolves with `done`.
 *
 * @param {Blob | Uint8Array} body
 * @param {string} name
 * @param {{ onSent(pct: number): void, onEvent(e: Record<string, any>): void }} on
 * @returns {Promise<Record<string, any>>}
 */
export function upload(body, name, on) {
  const { promise, resolve, reject } = Promise.withResolvers();
  const xhr = new XMLHttpRequest();
  const q = name ? `?name=${encodeURIComponent(name)}` : "";
  xhr.open("POST", `_p2p/payloads${q}`);
  xhr.setRequestHeader("content-type", "application/octet-stream");
  xhr.setRequestHeader("accept", "application/x-ndjson");
  const lines = new EventLines();
  let seen = 0;
  const feed = (/** @type {boolean} */ end) => {
    if (xhr.status < 200 || xhr.status >= 300) return;
    const text = xhr.responseText;
    const events = lines.push(text.slice(seen));
    seen = text.length;
    if (end) events.push(...lines.end());
    for (const e of events) if (e.type !== "done") on.onEvent(e);
  };
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) {
      on.onSent(Math.floor((100 * e.loaded) / Math.max(1, e.total)));
    }
  });
  xhr.upload.addEventListener("load", () => on.onSent(100));
  xhr.addEventListener("progress", () => {
    try {
      feed(false);
    } catch (err) {
      xhr.abort();
      reject(err);
    }
  });
  xhr.addEventListener("load", () => {
    if (xhr.status === 401) onUnauthorized();
    if (xhr.status < 200 || xhr.status >= 300) {
      const r = new Response(xhr.responseText, { status: xhr.status });
      errorFrom(r).then(reject);
      return;
    }
    try {
      feed(true);
      if (!lines.done) {
        throw new ApiError(
          "The peer's answer ended before it said it was done",
        );
      }
      resolve(
        check(
          lines.done,
          { payloadId: "payloadId", size: "number" },
          "upload result",
        ),
      );
    } catch (err) {
      reject(err);
    }
  });
  xhr.addEventListener(
    "error",
    () => reject(new ApiError("Cannot reach the peer", 0, "network")),
  );
  xhr.addEventListener(
    "abort",
    () => reject(new ApiError("The upload was cancelled")),
  );
  xhr.send(/** @type {XMLHttpRequestBodyInit} */ (body));
  return promise;
}

/**
 * Follows `_p2p/events` (server-sent activity records). `onState` gets `live`,
 * `reconnecting…` or `disconnected`; after the browser gives up it tries again in
 * 5 s. Returns a function that closes it.
 */
export function followEvents(
  /** @type {(r: import("./types.js").ActivityRecord) => void} */ onRecord,
  /** @type {(state: string) => void} */ onState,
) {
  /** @type {EventSource | undefined} */
  let es;
  let retry = 0;
  const open = () => {
    es?.close();
    const source = new EventSource("_p2p/events");
    es = source;
    source.addEventListener("activity", (ev) => {
      let r;
      try {
        r = JSON.parse(/** @type {MessageEvent} */ (ev).data);
      } catch {
        return;
      }
      if (
        isKind(r, "object") && typeof r.type === "string" &&
        typeof r.id === "number"
      ) {
        onRecord(r);
      }
    });
    source.addEventListener("open", () => onState("live"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        onState("disconnected");
        clearTimeout(retry);
        retry = setTimeout(open, 5000);
      } else onState("reconnecting…");
    });
  };
  open();
  return () => {
    clearTimeout(retry);
    es?.close();
  };
}

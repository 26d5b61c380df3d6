/**
 * The peer's control API as the page calls it: every request goes to a RELATIVE URL
 * (`_p2p/status`), so the page works both at `/` of a peer and under
 * `/_p2p/peers/{peerId}/` of any other peer.
 *
 * The answers are checked before use. The control API's contract is the zod schemas of
 * `proto/control.ts`, which a browser cannot import (TypeScript, and zod is not
 * vendored here); `check` below mirrors the part of them the page relies on (the
 * fields it reads, their types, the id formats) and ignores the rest, so an answer the
 * page cannot use becomes one readable error instead of a broken view.
 *
 * @module
 */

/** An error to show to people: its message is meant to be read. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {number} [status] HTTP status, 0 when there was no answer
   * @param {string} [code] the control API's error code
   */
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** The message of anything thrown. */
export function messageOf(/** @type {unknown} */ err) {
  return err instanceof Error ? err.message : String(err);
}

/** 64 lowercase hex digits. */
export const PAYLOAD_ID = /^[0-9a-f]{64}$/;
/** 40 lowercase hex digits. */
export const PEER_ID = /^[0-9a-f]{40}$/;

/** @type {() => void} */
let onUnauthorized = () => {};

/** Sets what happens when the control API answers 401 (the page asks for the token). */
export function setUnauthorizedHandler(/** @type {() => void} */ fn) {
  onUnauthorized = fn;
}

// ---- checking answers ----

/**
 * @typedef {"string" | "number" | "boolean" | "object" | "array" | "payloadId" | "peerId"
 *   | "string?" | "number?" | "object?" | "array?"} Kind
 */

/**
 * Whether `v` is of `kind` (a trailing `?`: or undefined/null).
 * @returns {boolean}
 */
function isKind(/** @type {unknown} */ v, /** @type {Kind} */ kind) {
  if (kind.endsWith("?")) {
    return v === undefined || v === null ||
      isKind(v, /** @type {Kind} */ (kind.slice(0, -1)));
  }
  switch (kind) {
    case "array":
      return Array.isArray(v);
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v) && v >= 0;
    case "payloadId":
      return typeof v === "string" && PAYLOAD_ID.test(v);
    case "peerId":
      return typeof v === "string" && PEER_ID.test(v);
    case "string":
      return typeof v === "string";
    case "boolean":
      return typeof v === "boolean";
    default:
      return false;
  }
}

/**
 * Checks that `v` is an object whose `fields` are of their kinds; returns it typed as
 * the caller says. Throws an ApiError naming `what` and the first bad field.
 *
 * @template T
 * @param {unknown} v
 * @param {Record<string, Kind>} fields
 * @param {string} what
 * @returns {T}
 */
export function check(v, fields, what) {
  if (!isKind(v, "object")) {
    throw new ApiError(`The peer's ${what} is not an object`);
  }
  const o = /** @type {Record<string, unknown>} */ (v);
  for (const [k, kind] of Object.entries(fields)) {
    if (!isKind(o[k], kind)) {
      throw new ApiError(
        `The peer's ${what} has no usable '${k}' (expected ${
          kind.replace("?", "")
        })`,
      );
    }
  }
  return /** @type {T} */ (v);
}

/** Checks each element of an array field with `check`. */
function checkEach(
  /** @type {unknown[]} */ list,
  /** @type {Record<string, Kind>} */ fields,
  /** @type {string} */ what,
) {
  for (const x of list) check(x, fields, what);
  return list;
}

/** `StatusAnswer` (the fields the page reads). */
const STATUS = /** @type {const} */ ({
  peerId: "peerId",
  name: "string",
  version: "string",
  host: "string",
  ports: "object",
  tracker: "object?",
  payloads: "number",
  completePayloads: "number",
  storedBytes: "number",
  knownPeers: "number",
  connections: "number",
  downloads: "array",
});
/** `PeerRow`. */
const PEER = /** @type {const} */ ({
  peerId: "peerId",
  host: "string",
  ports: "object",
  name: "string?",
  sources: "array",
  lastSeen: "number",
  failures: "number",
  rttMs: "number?",
});
/** `StoredPayload`. */
const STORED = /** @type {const} */ ({
  payloadId: "payloadId",
  size: "number",
  chunks: "number",
  held: "number",
  name: "string?",
  addedAt: "number",
});
/** `NetworkPayload`. */
const NETWORK = /** @type {const} */ ({
  payloadId: "payloadId",
  name: "string?",
  size: "number",
  chunks: "number",
  holders: "array",
});
/** `WhereRow`. */
const WHERE_ROW = /** @type {const} */ ({
  peerId: "string",
  name: "string?",
  address: "string",
  have: "string",
  count: "number",
  via: "string",
});

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
  const shown = plain && plain.length <= 300 && !plain.startsWith("<")
    ? `: ${plain}`
    : "";
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

// ---- NDJSON ----

/**
 * Splits NDJSON text into events: feeds `push(text)` and gets the complete lines'
 * events; an `error` event becomes an ApiError, a line that is not JSON too.
 */
export class EventLines {
  #buf = "";
  /** @type {Record<string, unknown> | undefined} */
  done = undefined;

  /** The events of the complete lines in `text` (added to what came before). */
  push(/** @type {string} */ text) {
    this.#buf += text;
    /** @type {Record<string, unknown>[]} */
    const out = [];
    for (
      let nl = this.#buf.indexOf("\n");
      nl >= 0;
      nl = this.#buf.indexOf("\n")
    ) {
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      const e = this.#parse(line);
      if (e) out.push(e);
    }
    return out;
  }

  /** The last line, when the stream ended without a newline. */
  end() {
    const e = this.#parse(this.#buf);
    this.#buf = "";
    return e ? [e] : [];
  }

  #parse(/** @type {string} */ line) {
    if (line.trim() === "") return undefined;
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      throw new ApiError(
        `The peer sent a line that is not JSON: '${line.slice(0, 80)}'`,
      );
    }
    if (!isKind(e, "object") || typeof e.type !== "string") {
      throw new ApiError("The peer sent an event without a type");
    }
    if (e.type === "error") {
      throw new ApiError(
        String(e.message ?? "The peer failed"),
        0,
        String(e.code ?? e.name),
      );
    }
    if (e.type === "done") this.done = e;
    return /** @type {Record<string, unknown>} */ (e);
  }
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

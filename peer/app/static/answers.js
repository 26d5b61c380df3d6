/**
 * What the page accepts from the peer's control API. Its contract is the zod schemas
 * of `proto/control.ts`, which a browser cannot import (TypeScript, and zod is not
 * vendored here); `check` mirrors the part of them the page relies on (the fields it
 * reads, their types, the id formats) and ignores the rest, so an answer the page
 * cannot use becomes one readable error instead of a broken view. `EventLines` splits
 * the NDJSON answers of uploads and downloads into checked events.
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

// ---- checking answers ----

/**
 * @typedef {"string" | "number" | "boolean" | "object" | "array" | "payloadId" | "peerId"
 *   | "string?" | "number?" | "boolean?" | "object?" | "array?"} Kind
 */

/**
 * Whether `v` is of `kind` (a trailing `?`: or undefined/null).
 * @returns {boolean}
 */
export function isKind(/** @type {unknown} */ v, /** @type {Kind} */ kind) {
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
        `The peer's ${what} has no usable '${k}' (expected ${kind.replace("?", "")})`,
      );
    }
  }
  return /** @type {T} */ (v);
}

/** Checks each element of an array with `check`; returns the array. */
export function checkEach(
  /** @type {unknown[]} */ list,
  /** @type {Record<string, Kind>} */ fields,
  /** @type {string} */ what,
) {
  for (const x of list) check(x, fields, what);
  return list;
}

/** `StatusAnswer` (the fields the page reads). */
export const STATUS = /** @type {const} */ ({
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
export const PEER = /** @type {const} */ ({
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
export const STORED = /** @type {const} */ ({
  payloadId: "payloadId",
  size: "number",
  chunks: "number",
  held: "number",
  complete: "boolean",
  name: "string?",
  addedAt: "number",
  pinned: "boolean?",
});
/** `PayloadHolder`. */
export const HOLDER = /** @type {const} */ ({
  peerId: "peerId",
  name: "string?",
  held: "number",
});
/** `NetworkPayload`. */
export const NETWORK = /** @type {const} */ ({
  payloadId: "payloadId",
  name: "string?",
  size: "number",
  chunks: "number",
  holders: "array",
});
/** `NetworkHit` of `proto/search.ts`. */
export const SEARCH_HIT = /** @type {const} */ ({
  payloadId: "payloadId",
  name: "string?",
  type: "string",
  tags: "array",
  size: "number",
  score: "number",
  snippet: "array",
  holders: "array",
});
/** `MissingPeer` of `proto/search.ts`. */
export const MISSING_PEER = /** @type {const} */ ({
  peerId: "peerId",
  name: "string?",
  message: "string",
});
/** `WhereRow`. */
export const WHERE_ROW = /** @type {const} */ ({
  peerId: "string",
  name: "string?",
  address: "string",
  have: "string",
  count: "number",
  via: "string",
});

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

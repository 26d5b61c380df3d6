/**
 * What a reverse proxy changes in the heads it relays, as pure functions: the
 * request head that goes upstream (hop-by-hop fields dropped, `Host` naming the
 * upstream, `X-Forwarded-For`/`-Proto`/`-Host` and `Via` set), the answer head the
 * client gets (hop-by-hop fields dropped, `Location` mapped to the client's view,
 * `Via` appended), with a fast path that passes an answer head on as it came when
 * nothing in it changes but the added `Via`; `Via` entries and loop detection; the
 * upstream URL and the request target taken apart; and answers made by the relay
 * itself. No I/O.
 *
 * @example Map a redirect of the upstream to the client's view
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapLocation, parseUpstream } from "./rewrite.ts";
 *
 * const base = parseUpstream("http://127.0.0.1:5810/app");
 * assert.equal(
 *   mapLocation("http://127.0.0.1:5810/app/next?x=1", base, "http://peer:5805", "/p"),
 *   "http://peer:5805/p/next?x=1",
 * );
 * ```
 *
 * @module
 */
import { concatBytes } from "../../proto/bytes.ts";
import { ProxyError } from "./errors.ts";
import type { BodyFraming } from "./framing.ts";
import {
  connectionTokens,
  type HeaderList,
  headerValue,
  HOP_BY_HOP,
  type RequestHead,
  type ResponseHead,
} from "./head.ts";
import { encodeRequestHead, encodeResponseHead } from "./encode.ts";
import { reasonPhrase } from "./reasons.ts";

/** An upstream base URL, parsed once. */
export interface UpstreamBase {
  /** The host to connect to, an IPv6 literal without brackets. */
  hostname: string;
  port: number;
  /** `host:port` as the Host header names it. */
  host: string;
  /** What its idle connections are kept under. */
  key: string;
  origin: URL;
  /** The path in the base URL, without a trailing slash. */
  path: string;
}

/** This hop's `Via` entry, and what is derived from it once. */
export interface Hop {
  /** The entry, e.g. `1.1 p2p-3f2a9c`. */
  entry: string;
  /** What identifies it in a `Via` list (see {@linkcode viaEntryKey}). */
  key: string;
  /** The end of an answer head passed on as it came: this `Via` and CRLFCRLF. */
  end: Uint8Array;
  /** The same with `Connection: close`. */
  closeEnd: Uint8Array;
}

/** Where the client reached the relay, as the answer's `Location` must show it. */
export interface ClientView {
  /** The upstream the request went to. */
  base: UpstreamBase;
  /** The path prefix stripped from the request (put back in `Location`), or `""`. */
  prefix: string;
  /** The `Host` the client asked for. */
  host: string;
  /** The scheme the client used (`http`). */
  proto: string;
  /** Request fields not sent upstream, lower case (see `RelayRoute`). */
  dropRequest?: ReadonlySet<string>;
  /** Answer fields not passed on, lower case. */
  dropAnswer?: ReadonlySet<string>;
  /** Answer fields added after the upstream's. */
  addAnswer?: HeaderList;
}

/** A `Via` entry this relay accepts as its own: `<protocol> <name>`. */
const VIA_ENTRY = /^[^\s,()]+ [^\s,()]+$/;
/**
 * Answer header fields that the relay drops or rewrites: hop-by-hop ones (but the
 * transfer codings of a body relayed as it is), `Via`, and locations.
 */
const REWRITTEN = new Set(
  [...HOP_BY_HOP, "via", "location", "content-location"].filter((n) => n !== "transfer-encoding"),
);
const encoder = new TextEncoder();

/**
 * This hop from its `Via` entry. Throws `TypeError` when the entry is not
 * `<protocol> <name>`.
 */
export function hopOf(entry: string): Hop {
  if (!VIA_ENTRY.test(entry)) {
    throw new TypeError(
      `Relay Via entry '${entry}' must be '<protocol> <name>', e.g. '1.1 p2p-3f'`,
    );
  }
  return {
    entry,
    key: viaEntryKey(entry),
    end: encoder.encode(`via: ${entry}\r\n\r\n`),
    closeEnd: encoder.encode(`via: ${entry}\r\nconnection: close\r\n\r\n`),
  };
}

/**
 * An upstream base URL taken apart. Throws `TypeError` when it is not an
 * `http://` URL.
 */
export function parseUpstream(upstream: string): UpstreamBase {
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    throw new TypeError(`upstream '${upstream}' is not a URL`);
  }
  if (url.protocol !== "http:") throw new TypeError(`upstream '${upstream}' must be http://`);
  return {
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || 80),
    host: url.host,
    key: `${url.hostname}:${url.port || 80}`,
    origin: new URL(url.origin),
    path: url.pathname.replace(/\/+$/, ""),
  };
}

/** A request target as path and query; an absolute-form target loses its origin. */
export function splitTarget(target: string): [path: string, search: string] {
  let t = target;
  if (!t.startsWith("/")) {
    try {
      const u = new URL(t);
      t = u.pathname + u.search;
    } catch {
      return ["", ""];
    }
  }
  const q = t.indexOf("?");
  return q < 0 ? [t, ""] : [t.slice(0, q), t.slice(q)];
}

/** `path` without `prefix` (a path prefix with no trailing slash), when it is under it. */
export function stripPrefix(path: string, prefix: string): string {
  if (prefix && (path === prefix || path.startsWith(prefix + "/"))) {
    return path.slice(prefix.length) || "/";
  }
  return path;
}

/** The entries of a `Via` header, comments removed. */
export function viaEntries(value: string | undefined): string[] {
  if (!value) return [];
  return value.replace(/\([^)]*\)/g, "").split(",").map((e) => e.trim()).filter((e) =>
    e.length > 0
  );
}

/** What identifies a `Via` entry: its protocol and name, lower case. */
export function viaEntryKey(entry: string): string {
  return entry.trim().split(/\s+/).slice(0, 2).join(" ").toLowerCase();
}

/**
 * The 508 for a request whose `Via` entries (`hops`) already list this hop, or
 * number `maxHops` or more; undefined when it may go on.
 */
export function loopError(
  hops: string[],
  hop: Hop,
  maxHops: number,
  what: string,
): ProxyError | undefined {
  if (hops.some((h) => viaEntryKey(h) === hop.key)) {
    return new ProxyError(
      508,
      `Cannot proxy '${what}': this hop '${hop.entry}' is already in its Via`,
    );
  }
  if (hops.length >= maxHops) {
    return new ProxyError(
      508,
      `Cannot proxy '${what}': it went through ${hops.length} proxies, the limit is ${maxHops}`,
    );
  }
  return undefined;
}

/**
 * The request head that goes upstream, in bytes: `target` on the upstream, its
 * `Host`, the fields of `head` but hop-by-hop ones (and those named in its
 * `Connection`, `tokens`, and in `from.dropRequest`), `X-Forwarded-For` with `remoteAddr` appended,
 * `X-Forwarded-Proto`/`-Host` from `from`, `Via` with this hop appended to `hops`,
 * the transfer codings of a chunked body (relayed as it is), and `Upgrade` when
 * `upgrade` is asked for.
 */
export function forwardHead(
  head: RequestHead,
  tokens: Set<string>,
  framing: BodyFraming,
  target: string,
  from: ClientView & { remoteAddr: string; upgrade: string | undefined },
  hops: string[],
  hop: Hop,
): Uint8Array {
  const out: HeaderList = [["host", from.base.host]];
  for (const [name, value] of head.headers) {
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n) || tokens.has(n) || n === "host" || n === "via") continue;
    if (from.dropRequest?.has(n)) continue;
    if (n === "x-forwarded-for" || n === "x-forwarded-proto" || n === "x-forwarded-host") {
      continue;
    }
    out.push([name, value]);
  }
  const xff = headerValue(head.headers, "x-forwarded-for");
  out.push(["x-forwarded-for", xff ? `${xff}, ${from.remoteAddr}` : from.remoteAddr]);
  out.push(["x-forwarded-proto", from.proto], ["x-forwarded-host", from.host]);
  out.push(["via", hops.length > 0 ? `${hops.join(", ")}, ${hop.entry}` : hop.entry]);
  // The body goes as it is, so its codings do too (`gzip, chunked`, say).
  if (framing.kind === "chunked") {
    out.push(["transfer-encoding", headerValue(head.headers, "transfer-encoding")!]);
  }
  if (from.upgrade !== undefined) out.push(["connection", "upgrade"], ["upgrade", from.upgrade]);
  return encodeRequestHead({ method: head.method, target, version: head.version, headers: out });
}

/**
 * The answer's head as the client gets it, in bytes. When nothing in it changes
 * but the added `Via` (and `Connection: close`), that is the upstream's head as it
 * came, `raw`, with them put at its end: no need to write it anew.
 */
export function answerHeadBytes(
  res: ResponseHead,
  raw: Uint8Array,
  hop: Hop,
  view: ClientView,
  keep: boolean,
): Uint8Array {
  const asIs = res.version === "HTTP/1.1" && raw[0] === 0x48 /* H */ &&
    view.dropAnswer === undefined && view.addAnswer === undefined &&
    !res.headers.some(([name]) => REWRITTEN.has(name.toLowerCase()));
  if (!asIs) return encodeResponseHead(answerHead(res, hop, view, keep ? "keep" : "close"));
  return concatBytes(raw.subarray(0, raw.length - 2), keep ? hop.end : hop.closeEnd);
}

/**
 * The answer's head as the client gets it: hop-by-hop fields (and those named in
 * its `Connection`, and the view's `dropAnswer`) dropped but the transfer codings of
 * a relayed body, the view's `addAnswer` added, `Location`
 * and `Content-Location` mapped with {@linkcode mapLocation}, this hop appended to
 * `Via`, and `Connection` as `connection` says (with `Upgrade` for a 101).
 */
export function answerHead(
  res: ResponseHead,
  hop: Hop,
  view: ClientView,
  connection: "keep" | "close" | "upgrade",
): ResponseHead {
  const tokens = connectionTokens(res.headers);
  const headers: HeaderList = [];
  let upstreamVia: string | undefined;
  for (const [name, value] of res.headers) {
    const n = name.toLowerCase();
    if (n === "via") {
      upstreamVia = upstreamVia ? `${upstreamVia}, ${value}` : value;
      continue;
    }
    // The body goes as it is, so its transfer codings do too.
    const relayed = n === "transfer-encoding" && connection !== "upgrade";
    if (!relayed && (HOP_BY_HOP.has(n) || tokens.has(n))) continue;
    if (view.dropAnswer?.has(n)) continue;
    if (n === "location" || n === "content-location") {
      headers.push([
        name,
        mapLocation(value, view.base, `${view.proto}://${view.host}`, view.prefix),
      ]);
      continue;
    }
    headers.push([name, value]);
  }
  if (view.addAnswer) headers.push(...view.addAnswer);
  headers.push(["via", upstreamVia ? `${upstreamVia}, ${hop.entry}` : hop.entry]);
  if (connection === "upgrade") {
    headers.push(["connection", "upgrade"]);
    const upgrade = headerValue(res.headers, "upgrade");
    if (upgrade !== undefined) headers.push(["upgrade", upgrade]);
  } else if (connection === "close") {
    headers.push(["connection", "close"]);
  }
  return { version: "HTTP/1.1", status: res.status, reason: res.reason, headers };
}

/**
 * Maps a `Location` on the upstream to the client's view: an absolute URL at the
 * upstream's origin to `publicOrigin`, and a path from the root (absolute or not)
 * from under the base path to under `prefix`. Leaves any other as it is.
 */
export function mapLocation(
  value: string,
  base: UpstreamBase,
  publicOrigin: string,
  prefix: string,
): string {
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith("//");
  if (!absolute && !value.startsWith("/")) return value;
  let target: URL;
  try {
    target = new URL(value, base.origin);
  } catch {
    return value;
  }
  if (target.origin !== base.origin.origin) return value;
  let path = target.pathname;
  if (base.path && (path === base.path || path.startsWith(base.path + "/"))) {
    path = path.slice(base.path.length) || "/";
  }
  if (!absolute && !base.path && !prefix) return value;
  return (absolute ? publicOrigin : "") + prefix + path + target.search + target.hash;
}

/**
 * An answer made by the relay itself, head and body in bytes: a JSON `error` body
 * (`{ error }`, not cached), else a JSON `json` body, else none; `extra` header
 * fields first, and `Connection: close` when `close`.
 */
export function localAnswer(
  status: number,
  error: { code: string; message: string } | undefined,
  close: boolean,
  extra: Record<string, string> = {},
  json?: unknown,
): Uint8Array {
  const body = error !== undefined
    ? encoder.encode(JSON.stringify({ error }))
    : json !== undefined
    ? encoder.encode(JSON.stringify(json))
    : new Uint8Array();
  const headers: HeaderList = Object.entries(extra);
  if (body.byteLength > 0) headers.push(["content-type", "application/json"]);
  headers.push(["content-length", String(body.byteLength)]);
  if (error) headers.push(["cache-control", "no-store"]);
  if (close) headers.push(["connection", "close"]);
  const head = encodeResponseHead({
    version: "HTTP/1.1",
    status,
    reason: reasonPhrase(status),
    headers,
  });
  return body.byteLength > 0 ? concatBytes(head, body) : head;
}

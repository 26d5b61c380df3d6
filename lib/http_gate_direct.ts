/**
 * The gate's own answers: a small request (no body, or a counted one of at most
 * {@linkcode DIRECT_BODY_MAX} bytes, and no `Expect`, `Upgrade` or method that a
 * `Request` cannot carry) goes to the handler straight from the head the gate has
 * parsed anyway, and the handler's `Response` is written to the client here. That
 * skips the loopback hop to the inner `Deno.serve` and its parse of the same head:
 * each request costs one write and one read fewer on each side of that hop. What
 * does not fit (large or chunked bodies, `Expect: 100-continue`, upgrades, `HEAD`)
 * still goes through the inner server, where hyper handles it.
 *
 * Measured with `bench/run.ts tracker_http`: see `lib/http_gate.ts`.
 *
 * @module
 */
import type { BodyFraming } from "./http_relay/framing.ts";
import { connectionTokens, headerValue, type RequestHead } from "./http_relay/head.ts";
import type { Inbox } from "./http_relay/inbox.ts";
import { reasonPhrase } from "./http_relay/reasons.ts";

/** The largest request body the gate reads whole and hands to the handler itself. */
export const DIRECT_BODY_MAX = 64 * 1024;

/** Methods a `Request` carries (CONNECT, TRACE and TRACK it refuses; HEAD has no body to count). */
const DIRECT_METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);

/** Answer header fields the gate sets itself from how it frames the body. */
const FRAMING_FIELDS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

/** A `Host` field: a name or address, an optional port; nothing that could move the path. */
const HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

const encoder = new TextEncoder();
const LAST_CHUNK = encoder.encode("0\r\n\r\n");

/** Whether the gate answers this request itself rather than through the inner server. */
export function answersDirectly(head: RequestHead, framing: BodyFraming): boolean {
  if (!DIRECT_METHODS.has(head.method)) return false;
  if (framing.kind === "chunked" || framing.kind === "close") return false;
  if (framing.kind === "length" && (framing.length > DIRECT_BODY_MAX || head.method === "GET")) {
    return false;
  }
  return headerValue(head.headers, "expect") === undefined &&
    headerValue(head.headers, "upgrade") === undefined;
}

/**
 * Reads a direct request's body whole from `inbox` (null when it has none);
 * undefined when the socket ends first.
 */
export async function readDirectBody(
  inbox: Inbox,
  framing: BodyFraming,
): Promise<Uint8Array<ArrayBuffer> | null | undefined> {
  if (framing.kind !== "length") return null;
  while (inbox.length < framing.length) {
    if (!await inbox.fill()) return undefined;
  }
  const body = inbox.bytes(framing.length).slice();
  inbox.consume(framing.length);
  return body;
}

/**
 * The `Request` of a parsed head and its body, with the URL `Deno.serve` would give
 * it (the `Host` field, else `fallbackHost`). Throws a `TypeError` for a head a
 * `Request` cannot carry (a `Host` that is not a host, say).
 */
export function directRequest(
  head: RequestHead,
  body: Uint8Array<ArrayBuffer> | null,
  fallbackHost: string,
): Request {
  const host = headerValue(head.headers, "host") || fallbackHost;
  if (!HOST.test(host)) throw new TypeError(`Host '${host.slice(0, 64)}' is not a host`);
  // The fields as pairs: a `Headers` built here first would be converted once more.
  const headers = head.headers;
  return new Request(`http://${host}${head.target}`, { method: head.method, headers, body });
}

/** Whether the client asked for the connection to close after this answer. */
export function closesAfter(head: RequestHead): boolean {
  const tokens = connectionTokens(head.headers);
  return tokens.has("close") || (head.version === "HTTP/1.0" && !tokens.has("keep-alive"));
}

/**
 * Writes `res` with `write`: a whole body with its `Content-Length`, in one write
 * with the head when the body comes in one piece (as a route's JSON does), else
 * chunked as the body streams; 1xx, 204 and 304 carry none. With `close`, the head
 * says `Connection: close`. Resolves once the last byte went out; rejects as
 * `write` does or the body's stream does (the connection must then close: the
 * answer is cut).
 */
export async function writeDirectAnswer(
  res: Response,
  close: boolean,
  write: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const lines = [`HTTP/1.1 ${res.status} ${reasonPhrase(res.status) || "Unknown"}`];
  for (const [name, value] of res.headers) {
    if (!FRAMING_FIELDS.has(name)) lines.push(`${name}: ${value}`);
  }
  if (close) lines.push("connection: close");
  const bodiless = res.status < 200 || res.status === 204 || res.status === 304;
  const reader = bodiless ? undefined : res.body?.getReader();
  if (!reader) {
    await res.body?.cancel();
    if (!bodiless) lines.push("content-length: 0");
    return write(encoder.encode(`${lines.join("\r\n")}\r\n\r\n`));
  }
  try {
    const first = await reader.read();
    const second = first.done ? first : await reader.read();
    if (second.done) {
      const body = first.value ?? new Uint8Array(0);
      lines.push(`content-length: ${body.byteLength}`);
      const head = encoder.encode(`${lines.join("\r\n")}\r\n\r\n`);
      const whole = new Uint8Array(head.byteLength + body.byteLength);
      whole.set(head);
      whole.set(body, head.byteLength);
      return await write(whole);
    }
    lines.push("transfer-encoding: chunked");
    await write(encoder.encode(`${lines.join("\r\n")}\r\n\r\n`));
    if (first.value!.byteLength > 0) await write(chunk(first.value!));
    let next: ReadableStreamReadResult<Uint8Array> = second;
    for (; !next.done; next = await reader.read()) {
      if (next.value.byteLength > 0) await write(chunk(next.value));
    }
    await write(LAST_CHUNK);
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  }
  // The reader is not released: a release makes a TypeError for its `closed` promise,
  // which cost a tenth of a `GET /peers` in a profile, and nothing reads the body again.
}

/** One chunk of a chunked body: size line, data, CRLF, in one buffer. */
function chunk(data: Uint8Array): Uint8Array {
  const size = encoder.encode(`${data.byteLength.toString(16)}\r\n`);
  const out = new Uint8Array(size.byteLength + data.byteLength + 2);
  out.set(size);
  out.set(data, size.byteLength);
  out.set([13, 10], size.byteLength + data.byteLength);
  return out;
}

/**
 * HTTP/1.1 message heads, sans-IO: `headEnd()` finds where a head ends in the
 * bytes read so far, and `parseRequestHead()` / `parseResponseHead()` turn it into
 * a typed head. Nothing here touches a socket; `encode.ts` turns a head back into
 * bytes, `framing.ts` says how the body that follows is delimited, and
 * `chunked.ts` where a chunked one ends.
 *
 * Heads are decoded as latin1, one byte one char, so every byte round-trips and
 * no UTF-8 decoding can merge or hide bytes. (Not with `TextDecoder("latin1")`:
 * the Encoding Standard makes that label windows-1252, which maps 0x80..0x9F to
 * other code points.)
 *
 * The parsers are strict where a lenient reading could make a proxy and the
 * server behind it see different messages (request smuggling): lines end with
 * CRLF only, a bare CR or LF or any control character but HTAB is an error,
 * obs-fold continuation lines are rejected, `Transfer-Encoding` together with
 * `Content-Length` is rejected, and `Content-Length` must be digits only.
 * Failures throw an `HttpParseError` whose `status` is the answer a server gives
 * and whose `code` names the fault:
 *
 * | status | code                    | fault                                             |
 * | ------ | ----------------------- | ------------------------------------------------- |
 * | 400    | `bad_request`           | malformed request line, header line or target     |
 * | 431    | `head_too_large`        | head over `MAX_HEAD` bytes or `MAX_HEADERS` fields |
 * | 505    | `version_not_supported` | a well-formed version other than 1.0 and 1.1      |
 * | 400    | `bad_transfer_encoding` | request TE not ending in chunked, or in HTTP/1.0  |
 * | 400    | `ambiguous_length`      | request with both TE and Content-Length           |
 * | 400    | `bad_content_length`    | request Content-Length not one run of digits      |
 * | 502    | `bad_upstream_head`     | any fault of a response head                      |
 * | 400    | `bad_chunked`           | malformed chunked body (`ChunkedTracker`)         |
 *
 * @example Parse a request head and find its body
 * ```ts
 * import assert from "node:assert/strict";
 * import { headEnd, parseRequestHead } from "./head.ts";
 * import { requestFraming } from "./framing.ts";
 *
 * const bytes = new TextEncoder().encode(
 *   "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
 * );
 * const end = headEnd(bytes, bytes.length);
 * const head = parseRequestHead(bytes.subarray(0, end));
 * assert.equal(head.target, "/up");
 * assert.deepEqual(requestFraming(head), { kind: "length", length: 5 });
 * assert.equal(bytes.length - end, 5);
 * ```
 *
 * @module
 */
import {
  CR,
  HTAB,
  isFieldByte,
  isToken,
  latin1Decode,
  LF,
  listMembers,
  NOT_FIELD_RE,
  show,
  showByte,
  SP,
  TOKEN_RE,
  trimOws,
} from "./_syntax.ts";
import { HttpParseError, type ParseStatus } from "./errors.ts";

/** Largest request or response head (start line + headers + CRLFCRLF) accepted, in bytes. */
export const MAX_HEAD = 64 * 1024;
/** Largest number of header fields in one head. */
export const MAX_HEADERS = 256;

/**
 * Field names (lowercase) that describe one connection rather than the message, so
 * a proxy does not forward them as they are (RFC 9110 §7.6.1), plus the
 * `Proxy-Connection` and `Keep-Alive` fields of older clients.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Empty lines tolerated before a request line (RFC 9112 §2.2 asks for at least one). */
const MAX_EMPTY_LINES = 8;

/** Header fields in order, names as sent (case kept), values trimmed of surrounding spaces/tabs. */
export type HeaderList = [name: string, value: string][];

/** A parsed request line and its header fields. */
export interface RequestHead {
  /** The method, case kept (methods are case-sensitive): `GET`, `CONNECT`, … */
  method: string;
  /** The request-target as sent: `/path?q`, `http://host/path`, `*` or `host:port`. */
  target: string;
  /** The protocol version. */
  version: "HTTP/1.0" | "HTTP/1.1";
  /** The header fields in order. */
  headers: HeaderList;
}

/** A parsed status line and its header fields. */
export interface ResponseHead {
  /** The protocol version. */
  version: "HTTP/1.0" | "HTTP/1.1";
  /** The status code, 100..599. */
  status: number;
  /** The reason phrase, possibly empty. */
  reason: string;
  /** The header fields in order. */
  headers: HeaderList;
}

/**
 * Index just past the first CRLFCRLF in `buf[0, length)`, searching from `from`
 * (pass the previous `length - 3`, clamped at 0, to rescan only new bytes), or -1
 * when there is none yet. Up to 8 empty lines (CRLF) at the very start of `buf`
 * are skipped rather than taken for the end of a head, as a request may start with
 * them (RFC 9112 §2.2); with more, the first CRLFCRLF is returned and the parser
 * rejects the head. Throws `RangeError` when `length` is not in 0..buf.length.
 */
export function headEnd(buf: Uint8Array, length: number, from = 0): number {
  if (!Number.isInteger(length) || length < 0 || length > buf.length) {
    throw new RangeError(
      `Cannot search for a head end: length '${length}' is not in 0..${buf.length}`,
    );
  }
  let start = Number.isFinite(from) ? Math.max(0, Math.trunc(from)) : 0;
  // Leading CRLFs: a CRLFCRLF made only of them does not end a head. The scan is
  // capped, so feeding CRLFs one at a time costs O(1) per call here.
  let lead = 0;
  while (
    lead <= 2 * MAX_EMPTY_LINES && lead + 1 < length && buf[lead] === CR && buf[lead + 1] === LF
  ) lead += 2;
  if (lead <= 2 * MAX_EMPTY_LINES) start = Math.max(start, lead);
  const view = buf.subarray(0, length);
  for (let i = view.indexOf(CR, start); i >= 0 && i + 3 < length; i = view.indexOf(CR, i + 1)) {
    if (view[i + 1] === LF && view[i + 2] === CR && view[i + 3] === LF) return i + 4;
  }
  return -1;
}

/**
 * Parses a request head: the bytes up to and including the CRLFCRLF that ends it,
 * as `headEnd()` finds them. Up to 8 empty lines before the request line are
 * skipped. Throws `HttpParseError`: 431 `head_too_large` for a head over
 * `MAX_HEAD` bytes or with over `MAX_HEADERS` fields; 505 `version_not_supported`
 * for a well-formed version other than HTTP/1.0 and HTTP/1.1; 400 `bad_request`
 * for anything else malformed: a request line that is not `method SP target SP
 * version`, a method that is not a token, a target that is not origin-form,
 * absolute-form, `*` (OPTIONS only) or authority-form (CONNECT only, which takes
 * nothing else), a header line without a colon, with whitespace before it, with
 * an empty or non-token name, a control character but HTAB in a value, an
 * obs-fold continuation line, or bytes after the CRLFCRLF.
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  const fail: Fail = (status, code, message) => {
    throw new HttpParseError(status, code, `Bad request head: ${message}`);
  };
  if (bytes.length > MAX_HEAD) {
    fail(431, "head_too_large", `'${bytes.length}' bytes is over the limit of '${MAX_HEAD}'`);
  }
  let text = latin1Decode(bytes);
  let empty = 0;
  while (text.startsWith("\r\n") && text.length > 4) {
    if (++empty > MAX_EMPTY_LINES) {
      fail(400, "bad_request", `over '${MAX_EMPTY_LINES}' empty lines before the request line`);
    }
    text = text.slice(2);
  }
  const [line, headers] = splitHead(text, fail);
  const parts = line.split(" ");
  if (parts.length !== 3) {
    fail(400, "bad_request", `request line ${show(line)} is not 'method SP target SP version'`);
  }
  const [method, target, version] = parts;
  if (!isToken(method)) fail(400, "bad_request", `method ${show(method)} is not a token`);
  checkTarget(method, target, fail);
  return { method, target, version: checkVersion(version, fail, 400, 505), headers };
}

/**
 * Parses a response head, the bytes up to and including its CRLFCRLF. The status
 * line is `version SP status SP reason`, where the reason may be empty and its SP
 * left out; the status is 3 digits, 100..599; the version HTTP/1.0 or HTTP/1.1.
 * Header lines follow the rules of `parseRequestHead()`. Every failure, a head
 * over the limits included, throws `HttpParseError(502, "bad_upstream_head")`.
 */
export function parseResponseHead(bytes: Uint8Array): ResponseHead {
  const fail: Fail = (_status, _code, message) => {
    throw new HttpParseError(502, "bad_upstream_head", `Bad upstream response head: ${message}`);
  };
  if (bytes.length > MAX_HEAD) {
    fail(431, "head_too_large", `'${bytes.length}' bytes is over the limit of '${MAX_HEAD}'`);
  }
  const [line, headers] = splitHead(latin1Decode(bytes), fail);
  const match = /^([^ ]*) ([^ ]*)(?: (.*))?$/s.exec(line);
  if (!match) {
    fail(
      502,
      "bad_upstream_head",
      `status line ${show(line)} is not 'version SP status SP reason'`,
    );
  }
  const [, version, code, reason = ""] = match;
  if (!/^[1-5][0-9][0-9]$/.test(code)) {
    fail(502, "bad_upstream_head", `status ${show(code)} is not 3 digits in 100..599`);
  }
  for (let i = 0; i < reason.length; i++) {
    if (!isFieldByte(reason.charCodeAt(i))) {
      fail(502, "bad_upstream_head", `reason phrase ${show(reason)} has a control character`);
    }
  }
  return {
    version: checkVersion(version, fail, 502, 502),
    status: Number(code),
    reason,
    headers,
  };
}

/** All values of the field `name` (compared case-insensitively), in order; empty when absent. */
export function headerValues(headers: HeaderList, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (const [n, v] of headers) if (n.toLowerCase() === lower) out.push(v);
  return out;
}

/** The values of the field `name` (case-insensitive) joined with ", "; `undefined` when absent. */
export function headerValue(headers: HeaderList, name: string): string | undefined {
  const values = headerValues(headers, name);
  return values.length === 0 ? undefined : values.join(", ");
}

/**
 * The connection options, lowercased, over all `Connection` fields:
 * `Connection: close, Upgrade` gives `Set {"close", "upgrade"}`. Empty list
 * elements are skipped.
 */
export function connectionTokens(headers: HeaderList): Set<string> {
  return new Set(listMembers(headerValues(headers, "connection")).map((t) => t.toLowerCase()));
}

type Fail = (status: ParseStatus, code: string, message: string) => never;

/**
 * Splits a head (after any leading empty lines) into its start line and its
 * header fields, checking the CRLFCRLF at its end, the field count and each field
 * line.
 */
function splitHead(text: string, fail: Fail): [line: string, headers: HeaderList] {
  if (!text.endsWith("\r\n\r\n")) fail(400, "bad_request", "it does not end with CRLFCRLF");
  const lines = text.slice(0, -4).split("\r\n");
  if (lines.length - 1 > MAX_HEADERS) {
    fail(
      431,
      "head_too_large",
      `'${lines.length - 1}' header fields is over the limit of '${MAX_HEADERS}'`,
    );
  }
  const headers: HeaderList = [];
  for (let i = 1; i < lines.length; i++) headers.push(parseField(lines[i], fail));
  return [lines[0], headers];
}

/** One `name: value` line as a field, its value trimmed of SP and HTAB. */
function parseField(line: string, fail: Fail): [string, string] {
  if (line.length === 0) fail(400, "bad_request", "an empty line comes before the end of it");
  const first = line.charCodeAt(0);
  if (first === SP || first === HTAB) {
    fail(400, "bad_request", `header line ${show(line)} is an obs-fold continuation line`);
  }
  const colon = line.indexOf(":");
  if (colon < 0) fail(400, "bad_request", `header line ${show(line)} has no colon`);
  const name = line.slice(0, colon);
  if (/[ \t]$/.test(name)) {
    fail(400, "bad_request", `header name ${show(name)} has whitespace before the colon`);
  }
  if (!TOKEN_RE.test(name)) fail(400, "bad_request", `header name ${show(name)} is not a token`);
  const value = line.slice(colon + 1);
  const bad = NOT_FIELD_RE.exec(value);
  if (bad) {
    fail(
      400,
      "bad_request",
      `value of header ${show(name)} has the control character ${showByte(bad[0].charCodeAt(0))}`,
    );
  }
  return [name, trimOws(value)];
}

const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+):([0-9]{1,5})$/;
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.\-]*:\/\/[^\/?#]/;

/**
 * Checks the request-target's form against the method: origin-form (`/…`),
 * absolute-form (`scheme://authority…`), `*` (OPTIONS only) or authority-form
 * (`host:port`, CONNECT only, which takes nothing else). No control character,
 * DEL or whitespace is allowed (bytes over 0x7F are, for clients that send raw
 * UTF-8 paths; they round-trip as latin1).
 */
function checkTarget(method: string, target: string, fail: Fail): void {
  // deno-lint-ignore no-control-regex -- control characters are what it looks for
  const bad = /[\x00-\x20\x7f]/.exec(target);
  if (bad) {
    const c = bad[0].charCodeAt(0);
    fail(400, "bad_request", `target ${show(target)} has the control character ${showByte(c)}`);
  }
  if (method === "CONNECT") {
    const port = AUTHORITY.exec(target)?.[1];
    if (port === undefined || Number(port) > 65535) {
      fail(400, "bad_request", `CONNECT target ${show(target)} is not 'host:port'`);
    }
    return;
  }
  if (target === "*") {
    if (method !== "OPTIONS") fail(400, "bad_request", `target '*' with method ${show(method)}`);
    return;
  }
  if (!target.startsWith("/") && !ABSOLUTE.test(target)) {
    fail(400, "bad_request", `target ${show(target)} is not '/path' or an absolute URL`);
  }
}

/** HTTP/1.0 or HTTP/1.1; another well-formed `HTTP/x.y` fails with `unsupported`, the rest with `malformed`. */
function checkVersion(
  version: string,
  fail: Fail,
  malformed: ParseStatus,
  unsupported: ParseStatus,
): "HTTP/1.0" | "HTTP/1.1" {
  if (version === "HTTP/1.1" || version === "HTTP/1.0") return version;
  if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) {
    fail(unsupported, "version_not_supported", `version ${show(version)} is not supported`);
  }
  return fail(malformed, "bad_request", `version ${show(version)} is not 'HTTP/x.y'`);
}

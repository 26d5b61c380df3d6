/**
 * HTTP/1.1 message heads and body framing, sans-IO, for a proxy that relays bytes
 * between a client socket and an upstream socket. `headEnd()` finds where a head
 * ends in the bytes read so far, `parseRequestHead()` / `parseResponseHead()` turn
 * it into a typed head, `encodeRequestHead()` / `encodeResponseHead()` turn it back
 * into bytes, `requestFraming()` / `responseFraming()` say how the body that
 * follows is delimited (RFC 9112 §6.3), and a `ChunkedTracker` finds where a
 * chunked body ends while its bytes are relayed as they are. Nothing here touches
 * a socket.
 *
 * Heads are decoded as latin1, one byte one char, so every byte round-trips and
 * no UTF-8 decoding can merge or hide bytes. (Not with `TextDecoder("latin1")`:
 * the Encoding Standard makes that label windows-1252, which maps 0x80..0x9F to
 * other code points.)
 *
 * The parsers are strict where a lenient reading could make this proxy and the
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
 * import { headEnd, parseRequestHead, requestFraming } from "./http1.ts";
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
/** Longest chunk-size line, extensions and CRLF included, in bytes. */
const MAX_CHUNK_LINE = 4096;
/** Most hex digits of a chunk size: 15 already reach 2^60. */
const MAX_SIZE_DIGITS = 15;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

/** 1 for each byte that is a `tchar` of RFC 9110 §5.6.2. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
/** Value of each hex digit byte, -1 for any other byte. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX["0123456789abcdef".charCodeAt(i)] = i;
  HEX["0123456789ABCDEF".charCodeAt(i)] = i;
}

/** A field-value byte: HTAB, SP, VCHAR or obs-text (no other control character, no DEL). */
function isFieldByte(b: number): boolean {
  return b === HTAB || (b >= 0x20 && b !== 0x7f);
}

/**
 * A malformed or unsupported HTTP/1.x message. `status` is what a server answers
 * with (400, 431, 502, 505) and `code` a short snake_case code (see the module
 * docs); a proxy maps a fault of a response head to 502.
 */
export class HttpParseError extends Error {
  /** The HTTP status a server answers this fault with. */
  readonly status: number;
  /** A short machine-readable code, such as `bad_request` or `ambiguous_length`. */
  readonly code: string;
  constructor(status: number, code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HttpParseError";
    this.status = status;
    this.code = code;
  }
}

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

/** How a message body is delimited. */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" }; // response only: body runs until the upstream closes

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

/**
 * Serializes a request head: request line, each field as `name: value\r\n`, then
 * CRLF, encoded as latin1. Throws `TypeError` when the method or a field name is
 * not a token, the target is empty or holds whitespace or a control character, a
 * value holds CR, LF, NUL or another control character but HTAB (header
 * injection), the version is not HTTP/1.0 or HTTP/1.1, or a character is above
 * U+00FF, which latin1 cannot carry.
 */
export function encodeRequestHead(head: RequestHead): Uint8Array {
  if (!isToken(head.method)) {
    throw new TypeError(`Cannot encode request head: method ${show(head.method)} is not a token`);
  }
  const target = head.target;
  if (target.length === 0 || [...target].some((c) => c.charCodeAt(0) <= SP || c === "\x7f")) {
    throw new TypeError(
      `Cannot encode request head: target ${
        show(target)
      } is empty or has whitespace or a control character`,
    );
  }
  const version = encodableVersion(head.version, "request");
  return encodeHead(`${head.method} ${target} ${version}`, head.headers, "request");
}

/**
 * Serializes a response head: status line (`version SP status SP reason`, the SP
 * kept when the reason is empty), each field as `name: value\r\n`, then CRLF,
 * encoded as latin1. Throws `RangeError` for a status that is not an integer in
 * 100..599, and `TypeError` for a control character but HTAB in the reason and
 * on the same grounds as `encodeRequestHead()` for version and fields.
 */
export function encodeResponseHead(head: ResponseHead): Uint8Array {
  const version = encodableVersion(head.version, "response");
  if (!Number.isInteger(head.status) || head.status < 100 || head.status > 599) {
    throw new RangeError(
      `Cannot encode response head: status '${head.status}' is not an integer in 100..599`,
    );
  }
  if (![...head.reason].every((c) => isFieldByte(c.charCodeAt(0)))) {
    throw new TypeError(
      `Cannot encode response head: reason ${show(head.reason)} has a control character`,
    );
  }
  return encodeHead(`${version} ${head.status} ${head.reason}`, head.headers, "response");
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

/**
 * How a request's body is delimited (RFC 9112 §6.3), strictly, since the server
 * behind the proxy must see the same body. With `Transfer-Encoding`: `chunked`,
 * which must be the final coding and appear only once, over all fields, else 400
 * `bad_transfer_encoding`, as also in an HTTP/1.0 request; together with
 * `Content-Length` it is 400 `ambiguous_length`. With `Content-Length`: every
 * value, over fields and comma-separated members, must be the same string of
 * 1..15 ASCII digits, else 400 `bad_content_length`; a length of 0 is `none`.
 * Neither field: `none`.
 */
export function requestFraming(head: RequestHead): BodyFraming {
  const te = headerValues(head.headers, "transfer-encoding");
  const cl = headerValues(head.headers, "content-length");
  if (te.length > 0) {
    if (cl.length > 0) {
      throw new HttpParseError(
        400,
        "ambiguous_length",
        `Bad request framing: both Transfer-Encoding ${show(te.join(", "))} and Content-Length ${
          show(cl.join(", "))
        }`,
      );
    }
    if (head.version === "HTTP/1.0") {
      throw new HttpParseError(
        400,
        "bad_transfer_encoding",
        `Bad request framing: Transfer-Encoding ${show(te.join(", "))} in an HTTP/1.0 request`,
      );
    }
    const codings = listMembers(te).map((c) => c.toLowerCase());
    const chunked = codings.filter((c) => c === "chunked").length;
    if (codings.at(-1) !== "chunked" || chunked !== 1) {
      throw new HttpParseError(
        400,
        "bad_transfer_encoding",
        `Bad request framing: Transfer-Encoding ${
          show(te.join(", "))
        } does not end in one 'chunked'`,
      );
    }
    return { kind: "chunked" };
  }
  if (cl.length === 0) return { kind: "none" };
  const length = contentLength(cl);
  if (length === undefined) {
    throw new HttpParseError(
      400,
      "bad_content_length",
      `Bad request framing: Content-Length ${show(cl.join(", "))} is not one run of 1..15 digits`,
    );
  }
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

/**
 * How a response's body is delimited, given the method of the request it answers
 * (RFC 9112 §6.3): `none` for an answer to HEAD, a 1xx, 204 or 304, and a 2xx
 * answer to CONNECT (the tunnel starts); `chunked` when `Transfer-Encoding` ends in
 * `chunked` (any `Content-Length` is then ignored); `close` when it ends in
 * another coding, or comes in an HTTP/1.0 response (faulty framing, §6.1);
 * `length` for a valid `Content-Length` (`none` when 0), under the rules of
 * `requestFraming()`; `close` when neither field is there. An invalid
 * `Content-Length` throws `HttpParseError(502, "bad_upstream_head")`.
 */
export function responseFraming(head: ResponseHead, requestMethod: string): BodyFraming {
  const { status } = head;
  if (requestMethod === "HEAD" || status < 200 || status === 204 || status === 304) {
    return { kind: "none" };
  }
  if (requestMethod === "CONNECT" && status < 300) return { kind: "none" };
  const te = headerValues(head.headers, "transfer-encoding");
  if (te.length > 0) {
    const final = listMembers(te).at(-1)?.toLowerCase();
    return final === "chunked" && head.version === "HTTP/1.1"
      ? { kind: "chunked" }
      : { kind: "close" };
  }
  const cl = headerValues(head.headers, "content-length");
  if (cl.length === 0) return { kind: "close" };
  const length = contentLength(cl);
  if (length === undefined) {
    throw new HttpParseError(
      502,
      "bad_upstream_head",
      `Bad upstream response framing: Content-Length ${
        show(cl.join(", "))
      } is not one run of 1..15 digits`,
    );
  }
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

// ChunkedTracker states.
const SIZE_START = 0; // first hex digit of a chunk size
const SIZE = 1; // more hex digits, or what follows them
const SIZE_BWS = 2; // whitespace after the size: only ';' may follow
const EXT = 3; // chunk extensions, up to CR
const SIZE_LF = 4; // the LF of a chunk-size line
const DATA = 5; // chunk data, skipped by count
const DATA_CR = 6; // the CR after chunk data
const DATA_LF = 7; // the LF after chunk data
const TRAILER_START = 8; // start of a trailer line, or the CR of the final empty line
const TRAILER_NAME = 9; // trailer field name, up to ':'
const TRAILER_VALUE = 10; // trailer field value, up to CR
const TRAILER_LF = 11; // the LF of a trailer line
const END_LF = 12; // the LF of the final empty line
const DONE = 13;

/**
 * Finds where a chunked body ends in a stream of raw bytes that is relayed as is,
 * never decoded into a new buffer. Feed it the bytes as they arrive; `push()`
 * returns how many bytes of this piece belong to the body: all of them, or fewer
 * when the body ended inside the piece (the rest belongs to the next message).
 * Once the body has ended (`done`), `push()` returns 0.
 *
 * It reads chunk-size lines (hex digits, optional whitespace and `;ext` chunk
 * extensions, CRLF; at most 4096 bytes a line), skips chunk data by count without
 * looking at it, checks the CRLF after each chunk's data, and after the last chunk
 * (size 0) reads trailer fields up to the empty line (at most `MAX_HEAD` bytes of
 * them). Work is O(n) in the bytes pushed and memory is constant, whatever the
 * chunk sizes, and any split of the input gives the same answer. Malformed input
 * (a size that is not hex, over 15 digits or over 2^53 - 1, a missing CRLF after
 * data, a bare CR or LF, a control character, an over-long line) throws
 * `HttpParseError(400, "bad_chunked")`; the tracker then throws the same error on
 * every later call. The caller maps it to another status for upstream bodies.
 */
export class ChunkedTracker {
  #state = SIZE_START;
  /** The chunk size being read, then the data bytes still to skip. */
  #size = 0;
  #digits = 0;
  /** Bytes of the current chunk-size line so far. */
  #line = 0;
  /** Bytes of the trailer section so far. */
  #trailer = 0;
  /** Bytes of the body consumed before the current piece, for messages. */
  #offset = 0;
  #error: HttpParseError | undefined;

  /** Whether the whole body, trailers and final CRLF included, has gone through `push()`. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Takes the next bytes of the stream and returns how many of them belong to the
   * body (0 once `done`). Throws `HttpParseError(400, "bad_chunked")` on malformed
   * input, and again on every call after that.
   */
  push(bytes: Uint8Array): number {
    if (this.#error) throw this.#error;
    const n = bytes.length;
    let i = 0;
    while (i < n && this.#state !== DONE) {
      if (this.#state === DATA) {
        const k = Math.min(this.#size, n - i);
        i += k;
        this.#size -= k;
        if (this.#size === 0) this.#state = DATA_CR;
        continue;
      }
      const b = bytes[i];
      this.#step(b, i);
      i++;
    }
    this.#offset += i;
    return i;
  }

  /** Advances the state machine by one byte (any state but DATA and DONE). */
  #step(b: number, at: number): void {
    switch (this.#state) {
      case SIZE_START:
      case SIZE: {
        this.#lineByte(at);
        const d = HEX[b];
        if (d >= 0) {
          this.#size = this.#size * 16 + d;
          if (++this.#digits > MAX_SIZE_DIGITS) {
            this.#fail(`chunk size has over '${MAX_SIZE_DIGITS}' hex digits`, at);
          }
          if (this.#size > Number.MAX_SAFE_INTEGER) {
            this.#fail("chunk size is over 2^53 - 1", at);
          }
          this.#state = SIZE;
        } else if (this.#state === SIZE_START) {
          this.#fail(`chunk size starts with ${showByte(b)}, not a hex digit`, at);
        } else if (b === SP || b === HTAB) this.#state = SIZE_BWS;
        else if (b === 0x3b) this.#state = EXT;
        else if (b === CR) this.#state = SIZE_LF;
        else this.#fail(`chunk size is followed by ${showByte(b)}`, at);
        return;
      }
      case SIZE_BWS:
        this.#lineByte(at);
        if (b === 0x3b) this.#state = EXT;
        else if (b !== SP && b !== HTAB) {
          this.#fail(`whitespace after a chunk size is followed by ${showByte(b)}, not ';'`, at);
        }
        return;
      case EXT:
        this.#lineByte(at);
        if (b === CR) this.#state = SIZE_LF;
        else if (!isFieldByte(b)) this.#fail(`chunk extension has ${showByte(b)}`, at);
        return;
      case SIZE_LF:
        this.#lineByte(at);
        if (b !== LF) this.#fail(`chunk-size line has CR followed by ${showByte(b)}`, at);
        this.#line = 0;
        this.#digits = 0;
        this.#state = this.#size > 0 ? DATA : TRAILER_START;
        return;
      case DATA_CR:
        if (b !== CR) this.#fail(`chunk data is followed by ${showByte(b)}, not CRLF`, at);
        this.#state = DATA_LF;
        return;
      case DATA_LF:
        if (b !== LF) this.#fail(`chunk data is followed by CR then ${showByte(b)}`, at);
        this.#state = SIZE_START;
        return;
      case TRAILER_START:
        this.#trailerByte(at);
        if (b === CR) this.#state = END_LF;
        else if (TCHAR[b]) this.#state = TRAILER_NAME;
        else this.#fail(`trailer line starts with ${showByte(b)}`, at);
        return;
      case TRAILER_NAME:
        this.#trailerByte(at);
        if (b === 0x3a) this.#state = TRAILER_VALUE;
        else if (!TCHAR[b]) this.#fail(`trailer field name has ${showByte(b)}`, at);
        return;
      case TRAILER_VALUE:
        this.#trailerByte(at);
        if (b === CR) this.#state = TRAILER_LF;
        else if (!isFieldByte(b)) this.#fail(`trailer field value has ${showByte(b)}`, at);
        return;
      case TRAILER_LF:
        this.#trailerByte(at);
        if (b !== LF) this.#fail(`trailer line has CR followed by ${showByte(b)}`, at);
        this.#state = TRAILER_START;
        return;
      case END_LF:
        this.#trailerByte(at);
        if (b !== LF) this.#fail(`final empty line has CR followed by ${showByte(b)}`, at);
        this.#state = DONE;
        return;
    }
  }

  #lineByte(at: number): void {
    if (++this.#line > MAX_CHUNK_LINE) {
      this.#fail(`chunk-size line is over '${MAX_CHUNK_LINE}' bytes`, at);
    }
  }

  #trailerByte(at: number): void {
    if (++this.#trailer > MAX_HEAD) {
      this.#fail(`trailer section is over '${MAX_HEAD}' bytes`, at);
    }
  }

  #fail(message: string, at: number): never {
    this.#error = new HttpParseError(
      400,
      "bad_chunked",
      `Bad chunked body at byte '${this.#offset + at}': ${message}`,
    );
    throw this.#error;
  }
}

// ---------------------------------------------------------------------------
// Helpers

type Fail = (status: number, code: string, message: string) => never;

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
  malformed: number,
  unsupported: number,
): "HTTP/1.0" | "HTTP/1.1" {
  if (version === "HTTP/1.1" || version === "HTTP/1.0") return version;
  if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) {
    fail(unsupported, "version_not_supported", `version ${show(version)} is not supported`);
  }
  return fail(malformed, "bad_request", `version ${show(version)} is not 'HTTP/x.y'`);
}

function encodableVersion(version: string, what: string): string {
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    throw new TypeError(
      `Cannot encode ${what} head: version ${show(String(version))} is not HTTP/1.0 or HTTP/1.1`,
    );
  }
  return version;
}

/** A start line and fields as latin1 bytes, each field checked against injection. */
function encodeHead(line: string, headers: HeaderList, what: string): Uint8Array {
  let text = line + "\r\n";
  for (const [name, value] of headers) {
    if (!TOKEN_RE.test(name)) {
      throw new TypeError(`Cannot encode ${what} head: header name ${show(name)} is not a token`);
    }
    const bad = NOT_FIELD_RE.exec(value);
    if (bad) {
      throw new TypeError(
        `Cannot encode ${what} head: value of header ${show(name)} has the control character ${
          showByte(bad[0].charCodeAt(0))
        }`,
      );
    }
    text += name + ": " + value + "\r\n";
  }
  text += "\r\n";
  // Heads are nearly always ASCII, which the native UTF-8 encoder writes the same.
  if (!NOT_ASCII_RE.test(text)) return asciiEncoder.encode(text);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) {
      throw new TypeError(
        `Cannot encode ${what} head: character ${show(text[i])} is not latin1`,
      );
    }
    out[i] = c;
  }
  return out;
}

const asciiEncoder = new TextEncoder();
/** A whole token (RFC 9110 §5.6.2). */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A character a field value must not hold: controls but HTAB, and DEL. */
// deno-lint-ignore no-control-regex -- control characters are what it looks for
const NOT_FIELD_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
// deno-lint-ignore no-control-regex -- the range includes them: any char above 0x7F
const NOT_ASCII_RE = /[^\x00-\x7f]/;

/** Whether `s` is a non-empty token (RFC 9110 §5.6.2). */
function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || !TCHAR[c]) return false;
  }
  return true;
}

/** The non-empty members of comma-separated list values, trimmed. */
function listMembers(values: string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const part of v.split(",")) {
      const t = trimOws(part);
      if (t) out.push(t);
    }
  }
  return out;
}

/**
 * The length all `Content-Length` values agree on, or `undefined`: every field and
 * every comma-separated member must be the same 1..15 ASCII digits (so "5, 5" is
 * 5, while "5, 6", "+5", "05" beside "5" and an empty member are not lengths).
 */
function contentLength(values: string[]): number | undefined {
  let first: string | undefined;
  for (const v of values) {
    for (const part of v.split(",")) {
      const t = trimOws(part);
      if (!/^[0-9]{1,15}$/.test(t) || (first !== undefined && t !== first)) return undefined;
      first = t;
    }
  }
  return first === undefined ? undefined : Number(first);
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === SP || s.charCodeAt(a) === HTAB)) a++;
  while (b > a && (s.charCodeAt(b - 1) === SP || s.charCodeAt(b - 1) === HTAB)) b--;
  return s.slice(a, b);
}

const asciiDecoder = new TextDecoder();

/** Each byte as the char of the same code. */
function latin1Decode(bytes: Uint8Array): string {
  // Heads are nearly always ASCII, which the native UTF-8 decoder reads the same.
  const text = asciiDecoder.decode(bytes);
  if (!NOT_ASCII_RE.test(text)) return text;
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

/** A value for an error message: quoted, control characters escaped, cut at 64 chars. */
function show(s: string): string {
  const cut = s.length > 64 ? s.slice(0, 64) + "…" : s;
  let escaped = "";
  for (const c of cut) {
    const code = c.charCodeAt(0);
    if (c === "'") escaped += "\\'";
    else if (code < 0x20 || code === 0x7f) escaped += `\\x${code.toString(16).padStart(2, "0")}`;
    else escaped += c;
  }
  return `'${escaped}'`;
}

function showByte(b: number): string {
  return b >= 0x21 && b < 0x7f && b !== 0x27
    ? `'${String.fromCharCode(b)}'`
    : `byte '0x${b.toString(16).padStart(2, "0")}'`;
}

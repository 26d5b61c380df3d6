/**
 * HTTP/1.1 message heads back into bytes, sans-IO: `encodeRequestHead()` and
 * `encodeResponseHead()` write what `head.ts` parses, as latin1, and refuse what
 * would inject a line or a field (CR, LF, NUL or another control character).
 *
 * @module
 */
import {
  isFieldByte,
  isToken,
  NOT_ASCII_RE,
  NOT_FIELD_RE,
  show,
  showByte,
  SP,
  TOKEN_RE,
} from "./_syntax.ts";
import type { HeaderList, RequestHead, ResponseHead } from "./head.ts";

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

/**
 * Character classes and small text helpers shared by the HTTP/1.1 codec's files:
 * token and field-value bytes, hex digits, list members, `Content-Length` values,
 * latin1 decoding and the quoting of values in error messages. Internal to
 * `lib/http_relay/`.
 *
 * @module
 */

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;

/** 1 for each byte that is a `tchar` of RFC 9110 §5.6.2. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
/** Value of each hex digit byte, -1 for any other byte. */
export const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX["0123456789abcdef".charCodeAt(i)] = i;
  HEX["0123456789ABCDEF".charCodeAt(i)] = i;
}

/** A field-value byte: HTAB, SP, VCHAR or obs-text (no other control character, no DEL). */
export function isFieldByte(b: number): boolean {
  return b === HTAB || (b >= 0x20 && b !== 0x7f);
}

/** A whole token (RFC 9110 §5.6.2). */
export const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A character a field value must not hold: controls but HTAB, and DEL. */
// deno-lint-ignore no-control-regex -- control characters are what it looks for
export const NOT_FIELD_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
// deno-lint-ignore no-control-regex -- the range includes them: any char above 0x7F
export const NOT_ASCII_RE = /[^\x00-\x7f]/;

/** Whether `s` is a non-empty token (RFC 9110 §5.6.2). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || !TCHAR[c]) return false;
  }
  return true;
}

/** The non-empty members of comma-separated list values, trimmed. */
export function listMembers(values: string[]): string[] {
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
export function contentLength(values: string[]): number | undefined {
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

/** `s` without the spaces and tabs around it. */
export function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === SP || s.charCodeAt(a) === HTAB)) a++;
  while (b > a && (s.charCodeAt(b - 1) === SP || s.charCodeAt(b - 1) === HTAB)) b--;
  return s.slice(a, b);
}

const asciiDecoder = new TextDecoder();

/** Each byte as the char of the same code. */
export function latin1Decode(bytes: Uint8Array): string {
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
export function show(s: string): string {
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

/** A byte for an error message: the character quoted when printable, else its hex code. */
export function showByte(b: number): string {
  return b >= 0x21 && b < 0x7f && b !== 0x27
    ? `'${String.fromCharCode(b)}'`
    : `byte '0x${b.toString(16).padStart(2, "0")}'`;
}

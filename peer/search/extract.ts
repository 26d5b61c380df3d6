/**
 * What the index reads of a payload: its content type (given, or sniffed from its
 * name and first bytes) and, for text types, its text: UTF-8 text, JSON, Markdown,
 * CSV as they are, HTML with its tags, scripts and styles dropped. At most
 * `MAX_TEXT_BYTES` (1 MiB) of a payload are read for its text; the rest of a longer
 * document is not indexed (its name, tags and type still are). A payload whose first
 * bytes are not valid UTF-8 (or hold NUL) is binary: only its metadata is indexed.
 *
 * @module
 */
import { typeFromName } from "../../proto/search.ts";

/** Bytes of a payload read for its text: 1 MiB. */
export const MAX_TEXT_BYTES = 1024 * 1024;

/** Magic numbers of a few binary types. */
const MAGIC: [number[], string][] = [
  [[0x25, 0x50, 0x44, 0x46], "application/pdf"],
  [[0x89, 0x50, 0x4e, 0x47], "image/png"],
  [[0xff, 0xd8, 0xff], "image/jpeg"],
  [[0x47, 0x49, 0x46, 0x38], "image/gif"],
  [[0x50, 0x4b, 0x03, 0x04], "application/zip"],
  [[0x1f, 0x8b], "application/gzip"],
];

/** Whether the index reads the text of payloads of this type. */
export function isTextType(type: string): boolean {
  return type.startsWith("text/") || type === "application/json" ||
    type === "application/x-ndjson" || type === "application/xml";
}

/**
 * The content type of a payload from its name's extension, else its first bytes:
 * a known magic number, JSON or HTML by their first character, UTF-8 text, or
 * `application/octet-stream`.
 */
export function sniffType(name: string | undefined, head: Uint8Array): string {
  const byName = typeFromName(name);
  if (byName) return byName;
  for (const [magic, type] of MAGIC) {
    if (magic.every((b, i) => head[i] === b)) return type;
  }
  const text = decodeUtf8(head);
  if (text === undefined) return "application/octet-stream";
  const start = text.trimStart();
  if (/^<(!doctype html|html|head|body)\b/i.test(start)) return "text/html";
  if (/^[[{]/.test(start)) {
    try {
      JSON.parse(text);
      return "application/json";
    } catch {
      // Cut short or not JSON: text.
    }
  }
  return "text/plain";
}

/**
 * The bytes as UTF-8 text, or undefined when they hold NUL or are not UTF-8 (a
 * character cut at the end of the bytes, as at the text cap, is dropped, not an error).
 */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined;
  // Drop up to 3 bytes of a character cut at the end.
  let end = bytes.length;
  for (let back = 1; back <= 3 && end - back >= 0; back++) {
    const b = bytes[end - back];
    if ((b & 0xc0) !== 0x80) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      if (need > back) end -= back;
      break;
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end));
  } catch {
    return undefined;
  }
}

/** The text of an HTML document: scripts, styles and tags dropped, a few entities read. */
export function htmlText(html: string): string {
  return html
    .replace(/<(script|style)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(
      /&(amp|lt|gt|quot|#39|nbsp);/g,
      (_, e: string) =>
        ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'", nbsp: " " })[e] ?? " ",
    )
    .replace(/\s+/g, " ")
    .trim();
}

/** The text the index keeps of a payload of `type` whose first bytes are `head`. */
export function textOf(type: string, head: Uint8Array): string {
  if (!isTextType(type)) return "";
  const text = decodeUtf8(head.subarray(0, MAX_TEXT_BYTES)) ?? "";
  return type === "text/html" ? htmlText(text) : text;
}

/** Reads at most `max` bytes from the start of a stream, then cancels it. */
export async function readHead(
  stream: ReadableStream<Uint8Array>,
  max = MAX_TEXT_BYTES,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = stream.getReader();
  try {
    while (n < max) {
      const { done, value } = await reader.read();
      if (done) break;
      const part = value.subarray(0, max - n);
      parts.push(part);
      n += part.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * One voice for the CLI's errors: one line starting `p2p: `, ids in their short form
 * and at most once, no internal class names (`TypeError: fetch failed`) nor HTTP
 * statuses; with `--json`, the same as `{"error":{"code","message"}}` with a stable
 * code. Pure: errors in, text out.
 *
 * ```ts
 * import { humanMessage } from "./errors.ts";
 *
 * const id = "ab".repeat(32);
 * console.assert(
 *   humanMessage(`TypeError: no payload '${id}' (HTTP 404): '${id}' is gone`) ===
 *     "No payload 'abababababab': it is gone",
 * );
 * ```
 *
 * @module
 */
import { errorMessage, P2pError } from "../proto/errors.ts";
import { shortId } from "../proto/control.ts";

/** The prefix of every error line. */
export const ERROR_PREFIX = "p2p: ";

/**
 * A message as people read it: one line, sentence case, no class names, no HTTP
 * statuses, each 40- or 64-hex id short and only its first mention kept (a later
 * `'ID'` becomes `it`).
 */
export function humanMessage(message: string): string {
  let text = message.trim().replace(/\s*\n\s*/g, " ");
  text = text.replace(/\b(?:[A-Z][A-Za-z]*)?(?:Error|Exception): /g, "");
  text = text.replace(/\s*\((?:HTTP|status) \d{3}\)/g, "");
  const seen = new Set<string>();
  text = text.replace(/'?\b([0-9a-f]{64}|[0-9a-f]{40})\b'?/g, (whole, id: string) => {
    const quoted = whole.startsWith("'");
    if (seen.has(id)) return quoted ? "it" : shortId(id);
    seen.add(id);
    return quoted ? `'${shortId(id)}'` : shortId(id);
  });
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The stable code of an error: a `P2pError`'s, else `failed`. */
export function errorCode(err: unknown): string {
  return err instanceof P2pError ? err.code : "failed";
}

/** The line (no newline) an error prints as: human, or JSON when `json`. */
export function errorLine(err: unknown, json: boolean): string {
  const message = humanMessage(errorMessage(err));
  if (json) return JSON.stringify({ error: { code: errorCode(err), message } });
  return ERROR_PREFIX + message;
}

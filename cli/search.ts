/**
 * `p2p search QUERY [--limit N] [--json]` (this peer's index and every live peer's,
 * merged: `GET /_p2p/search`) and `p2p tag PAYLOAD [TAG…] [--type MIME]` (a payload's
 * tags and content type for the index: `PUT /_p2p/search/meta/:ref`). Errors go
 * through `withPeer()`, so they read like every other client command's.
 *
 * @module
 */
import type { z } from "zod";
import { ErrorBody } from "../proto/error_body.ts";
import { ProtocolError } from "../proto/errors.ts";
import { ContentType, PayloadMeta, SearchAnswer, type Snippet, Tag } from "../proto/search.ts";
import { ControlError, PeerUnreachableError } from "../peer/control_client.ts";
import { ClientError, type PeerTarget, withPeer } from "./client.ts";
import { size } from "./format.ts";

/** What `p2p search --help` says of the query language. */
export const SEARCH_HELP = `
Query language:
  rust wasm          both words (AND by default)
  rust OR go         either side of OR (a b OR c is (a AND b) OR c)
  -draft             leave out what matches draft
  "exact words"      the words in this order
  conf*              words that start with conf
  recieve            words of 4+ letters also match with a typo (2 from 8 letters)
  name:report        only in the name; tag:music only in the tags
  type:text          content types that start with text (type:text/csv, type:image)
Case and accents do not count; Chinese, Japanese and Korean words are found as phrases.
A query has at most 1024 bytes. Peers that do not answer within 2 s are named, not
waited for. The text of text, JSON, Markdown, HTML and CSV payloads is indexed up to
1 MiB each; names, tags and types of every payload.`;

/** Calls the control API at `path` and parses the JSON answer with `schema`. */
async function call<T extends z.ZodType>(
  node: PeerTarget,
  path: string,
  schema: T,
  init: RequestInit = {},
): Promise<z.infer<T>> {
  return await withPeer(node, async () => {
    let res: Response;
    try {
      res = await fetch(`${node.url}${path}`, {
        ...init,
        headers: {
          ...(node.token ? { authorization: `Bearer ${node.token}` } : {}),
          ...(init.body ? { "content-type": "application/json" } : {}),
        },
        signal: AbortSignal.timeout(30_000),
      });
    } catch (cause) {
      throw new PeerUnreachableError(node.url, { cause });
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) {
      const e = ErrorBody.safeParse(body);
      throw e.success
        ? new ControlError(e.data.error.code, e.data.error.message, res.status)
        : new ControlError(`http_${res.status}`, text.slice(0, 300), res.status);
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new ProtocolError("invalid_answer", `The answer to '${path}' is not valid`);
    }
    return parsed.data;
  });
}

/** A snippet as text, matched words in brackets (bold on a terminal). */
export function snippetText(snippet: Snippet, color: boolean): string {
  return snippet.map((p) => p.mark ? (color ? `\x1b[1m${p.text}\x1b[0m` : `[${p.text}]`) : p.text)
    .join("").replace(/\s+/g, " ").trim();
}

/** `p2p search QUERY`. */
export async function search(
  node: PeerTarget,
  q: string,
  opts: { limit?: number; json?: boolean },
): Promise<void> {
  const params = new URLSearchParams({ q, ...(opts.limit ? { limit: String(opts.limit) } : {}) });
  const answer = await call(node, `/_p2p/search?${params}`, SearchAnswer);
  if (opts.json) {
    console.log(JSON.stringify(answer));
    return;
  }
  const color = Deno.stdout.isTerminal();
  for (const h of answer.hits) {
    const holders = h.holders.map((x) => x.name ?? x.peerId.slice(0, 12)).join(", ");
    console.log(
      `${h.payloadId.slice(0, 12)}  ${h.name ?? "(no name)"}  ${h.type}  ${size(h.size)}  ` +
        `score ${h.score.toFixed(2)}  held by ${holders}`,
    );
    const text = snippetText(h.snippet, color);
    if (text) console.log(`    ${text}`);
  }
  if (answer.hits.length === 0) console.error("No payload matches.");
  for (const m of answer.missing) {
    console.error(`not searched: ${m.name ?? m.peerId.slice(0, 12)}: ${m.message}`);
  }
}

/** `p2p tag PAYLOAD [TAG…] [--type MIME]`: sets the payload's tags (and type) for search. */
export async function tag(
  node: PeerTarget,
  ref: string,
  tags: string[],
  opts: { type?: string; json?: boolean },
): Promise<void> {
  const body = JSON.stringify({ tags, ...(opts.type ? { type: opts.type } : {}) });
  const path = `/_p2p/search/meta/${encodeURIComponent(ref)}`;
  const meta = await call(node, path, PayloadMeta, { method: "PUT", body });
  console.log(opts.json ? JSON.stringify(meta) : `tags: ${(meta.tags ?? []).join(", ")}`);
}

/**
 * Checks `p2p put`'s `--tag` and `--type` before anything is sent, and names the
 * payload they will go to: its `--name`, else the file's name. `ClientError` for a bad
 * tag or type, or for standard input without `--name`.
 */
export function putMetaTarget(
  file: string,
  opts: { name?: string; tag?: string[]; type?: string },
): string | undefined {
  if (!opts.tag?.length && !opts.type) return undefined;
  for (const t of opts.tag ?? []) {
    if (!Tag.safeParse(t).success) {
      throw new ClientError(
        `Tag '${t}' is not valid: 1 to 64 characters, no spaces, commas or quotes`,
      );
    }
  }
  if (opts.type && !ContentType.safeParse(opts.type).success) {
    throw new ClientError(`Type '${opts.type}' is not a content type like 'text/plain'`);
  }
  const name = opts.name ?? (file === "-" ? undefined : file.split(/[\\/]/).pop());
  if (!name) throw new ClientError("--tag and --type need --name when reading standard input");
  return name;
}

/**
 * After `p2p put`: gives the payload just put (`ref`: its id) its tags and type, and
 * says so on standard error (standard output keeps put's answer).
 */
export async function tagAfterPut(
  node: PeerTarget,
  ref: string,
  opts: { tag?: string[]; type?: string },
): Promise<void> {
  const body = JSON.stringify({
    ...(opts.tag?.length ? { tags: opts.tag } : {}),
    ...(opts.type ? { type: opts.type } : {}),
  });
  const path = `/_p2p/search/meta/${encodeURIComponent(ref)}`;
  const meta = await call(node, path, PayloadMeta, { method: "PUT", body });
  const parts = [meta.tags?.length ? `tags ${meta.tags.join(", ")}` : "", meta.type ?? ""];
  console.error(`p2p: ${parts.filter((p) => p).join("; ")} kept for search`);
}

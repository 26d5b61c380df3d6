/**
 * Calls of the two control routes by which a client on the peer's own machine names a
 * file by path instead of streaming its bytes over HTTP (`peer/control_local_files.ts`):
 * `saveOnPeer()` (the peer downloads straight into the file) and `putFromFile()` (the
 * peer reads the file itself). `isLocalPeer()` says when to try them; a peer that
 * cannot (an older one, another machine behind a loopback forward, a folder it does
 * not see) answers with one of `FALL_BACK`'s codes, and the caller streams as before.
 *
 * @module
 */
import type { z } from "zod";
import {
  type DownloadDoneEvent,
  DownloadEvent,
  type ErrorEvent,
  type PutDoneEvent,
  PutEvent,
} from "../proto/control.ts";
import { ErrorBody } from "../proto/error_body.ts";
import { jsonLines } from "../proto/lines.ts";
import { isLoopback } from "../lib/net_addr.ts";
import {
  ControlError,
  type DownloadOptions,
  PeerUnreachableError,
} from "../peer/control_client.ts";
import type { PeerTarget } from "./client.ts";

/** Codes (and `http_404`) after which the client streams the bytes itself instead. */
export const FALL_BACK = new Set(["not_local", "no_folder", "bad_path", "not_found", "http_404"]);

/** Whether the peer at `node.url` is on this machine (a loopback address or `localhost`). */
export function isLocalPeer(node: { url: string }): boolean {
  const host = new URL(node.url).hostname.replace(/^\[|\]$/g, "");
  if (host === "localhost") return true;
  try {
    return isLoopback(host);
  } catch {
    return false;
  }
}

/** `path` made absolute against the current folder, its folder's symlinks resolved. */
export function absolutePath(path: string): string {
  const i = path.lastIndexOf("/");
  const folder = i > 0 ? path.slice(0, i) : i === 0 ? "/" : ".";
  const real = Deno.realPathSync(folder);
  return `${real === "/" ? "" : real}/${path.slice(i + 1)}`;
}

/** Whether `err` means: stream the bytes instead. */
export function shouldFallBack(err: unknown): boolean {
  return err instanceof ControlError && FALL_BACK.has(err.code);
}

/**
 * `POST /_p2p/downloads/:id/to-file`: the peer downloads the payload into `path` (an
 * absolute path); resolves with the `done` event once the file has its name.
 */
export async function saveOnPeer(
  node: PeerTarget,
  payloadId: string,
  req: { path: string; force: boolean },
  opts: DownloadOptions,
): Promise<DownloadDoneEvent> {
  const path = `/_p2p/downloads/${encodeURIComponent(payloadId)}/to-file`;
  for await (const e of call(node, path, req, DownloadEvent, opts.signal)) {
    if (e.type === "done") return e;
    if (e.type === "error") throw new ControlError(e.code ?? "failed", e.message);
    opts.onEvent?.(e);
  }
  throw new ControlError("ended_early", "The peer ended the answer early", 502);
}

/** `POST /_p2p/payloads/from-file`: the peer reads and stores the file at `path` itself. */
export async function putFromFile(
  node: PeerTarget,
  req: { path: string; name?: string },
  onEvent?: (e: Exclude<PutEvent, ErrorEvent | PutDoneEvent>) => void,
): Promise<PutDoneEvent> {
  for await (const e of call(node, "/_p2p/payloads/from-file", req, PutEvent)) {
    if (e.type === "done") return e;
    if (e.type === "error") throw new ControlError(e.code ?? "failed", e.message);
    onEvent?.(e);
  }
  throw new ControlError("ended_early", "The peer ended the answer early", 502);
}

/** POSTs `body` as JSON and yields the NDJSON answer's lines, each parsed with `schema`. */
async function* call<T extends z.ZodType>(
  node: PeerTarget,
  path: string,
  body: unknown,
  schema: T,
  signal?: AbortSignal,
): AsyncGenerator<z.infer<T>> {
  let res: Response;
  try {
    res = await fetch(node.url.replace(/\/+$/, "") + path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(node.token === undefined ? {} : { authorization: `Bearer ${node.token}` }),
      },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw new PeerUnreachableError(node.url, { cause: err });
  }
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    const parsed = ErrorBody.safeParse((() => {
      try {
        return JSON.parse(text);
      } catch {
        return undefined;
      }
    })());
    if (parsed.success) {
      throw new ControlError(parsed.data.error.code, parsed.data.error.message, res.status);
    }
    throw new ControlError(
      `http_${res.status}`,
      `The peer answered HTTP ${res.status}`,
      res.status,
    );
  }
  if (!res.body) return;
  try {
    for await (const value of jsonLines(res.body)) {
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        throw new ControlError("invalid_answer", `The answer to '${path}' is not valid`, 502);
      }
      yield parsed.data;
    }
  } catch (err) {
    if (err instanceof ControlError) throw err;
    if (signal?.aborted) throw signal.reason;
    throw new ControlError("stream_broken", `The answer of ${node.url} broke off`, 502, {
      cause: err,
    });
  }
}

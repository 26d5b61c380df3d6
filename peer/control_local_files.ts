/**
 * The control API's routes for a client on the peer's own machine, which names files
 * by absolute path so that each byte is written once (issue 13):
 *
 * - `POST /_p2p/downloads/:ref/to-file` (`SaveToFileRequest`): the peer downloads the
 *   payload straight into `path` (through `path.p2p-partial`, created fresh and
 *   exclusively, never through a symlink; published by hard link, or renamed over an
 *   existing file only with `force`), and the store keeps that file as the payload's
 *   linked file instead of a copy of its own (`ChunkStore.linkTo()`). The answer is the
 *   same NDJSON as `POST /_p2p/downloads/:ref`; `done` comes once the file has its
 *   name.
 * - `POST /_p2p/payloads/from-file` (`PutFileRequest`): the peer reads the file itself,
 *   hashing as it reads, and links the payload to it (`LocalFileSource`); the answer
 *   is the same NDJSON as `POST /_p2p/payloads`.
 *
 * Both need the owner's token (as every route) and a loopback client: the last
 * `X-Forwarded-For` hop (the peer's own relay writes it) must be a loopback address,
 * else 403 `not_local`. The destination rules are those of `cli/destination.ts`,
 * checked again here (`checkDestination()`): the peer never trusts the client for them.
 *
 * @module
 */
import type { Context } from "hono";
import { PutFileRequest, SaveToFileRequest } from "../proto/control.ts";
import type { PutEvent } from "../proto/control.ts";
import { ForbiddenError, type P2pError } from "../proto/errors.ts";
import { jsonBody } from "../lib/http_api.ts";
import { isLoopback } from "../lib/net_addr.ts";
import type { ControlNode } from "./control.ts";
import { download, type DownloadWatchers, ndjson } from "./control_stream.ts";
import { checkDestination, LocalFileSource, PARTIAL_SUFFIX } from "./linked_files.ts";

/** What the routes need of the store beyond `ControlNode.store`. */
export interface LinkingStore {
  linkTo(payloadId: string, partial: string): Promise<void>;
  finishLink(payloadId: string, path: string, force: boolean): Promise<void>;
  abandonLink(payloadId: string): Promise<void>;
}

/** Throws 403 `not_local` unless the request came from this machine. */
export function assertLocalClient(c: Context, refuse: (c: Context, e: P2pError) => P2pError) {
  const from = c.req.header("x-forwarded-for")?.split(",").at(-1)?.trim();
  let local = from === undefined; // straight to the control server, which binds loopback
  try {
    local ||= isLoopback(from!);
  } catch {
    // Not an address (a peer link's name): not local.
  }
  if (!local) {
    throw refuse(
      c,
      new ForbiddenError(
        "not_local",
        "Only a client on the peer's own machine may name a file by its path",
      ),
    );
  }
}

/** `POST /_p2p/downloads/:ref/to-file`: see the module notes. */
export async function saveToFile(
  c: Context,
  node: ControlNode,
  store: LinkingStore,
  payloadId: string,
  watchers: DownloadWatchers,
): Promise<Response> {
  const { path, force = false } = await jsonBody(c, SaveToFileRequest);
  await checkDestination(path, force);
  await store.linkTo(payloadId, path + PARTIAL_SUFFIX);
  node.log.record("download.to_file", { payloadId, path, force });
  // The same answer as a download, whose result waits for the file to get its name.
  const get: ControlNode["get"] = async (id, onProgress) => {
    try {
      const res = await node.get(id, onProgress);
      await store.finishLink(id, path, force);
      return res;
    } catch (err) {
      await store.abandonLink(id);
      throw err;
    }
  };
  const view = new Proxy(node, {
    get: (target, key) => {
      if (key === "get") return get;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return download(c, view, payloadId, watchers);
}

/** `POST /_p2p/payloads/from-file`: see the module notes. */
export async function putFromFile(c: Context, node: ControlNode): Promise<Response> {
  const { path, name } = await jsonBody(c, PutFileRequest);
  const source = await LocalFileSource.open(path);
  return ndjson<PutEvent>(c, async (send) => {
    const res = await node.put(source, name ?? path.split("/").pop(), send);
    await node.store.pin(res.payloadId);
    send({ type: "done", ...res });
  });
}

/**
 * The peer's answers to wire requests from other peers: HAVE? (its bitfield of a
 * payload), GET_CHUNK (a held chunk, paced by the upload limit), PUT_CHUNK (a pushed
 * chunk, verified and stored; the manifest is asked of the pusher first when the
 * payload is new here), MANIFEST? , PEERS? (live known peers), LOG? and PING. Each
 * answer is logged; a request that cannot be served throws a `ProtocolError`, which
 * the connection sends back as ERROR with its code.
 *
 * @module
 */
import type { RequestHandler } from "./connection.ts";
import type { PeerConnection } from "./connection.ts";
import type { ChunkStore } from "./chunk_store.ts";
import type { PeerLog } from "./activity.ts";
import type { PeerTable } from "./peer_table.ts";
import type { RateLimiter } from "./rate_limit.ts";
import { IntegrityError, ProtocolError } from "../proto/errors.ts";
import { manifestFrom, manifestMessage } from "../proto/manifest_body.ts";
import type { Manifest } from "../proto/manifest.ts";
import type { Message, WirePeer } from "../proto/messages.ts";

/** What the request handler needs of its neighbours. */
export interface RequestHandlerDeps {
  store: Pick<
    ChunkStore,
    "getManifest" | "payload" | "have" | "has" | "readChunk" | "writeChunk" | "addManifest"
  >;
  table: Pick<PeerTable, "list">;
  log: Pick<PeerLog, "record" | "query">;
  /** Paces the chunk bytes served, when there is a cap. */
  uploadLimit?: Pick<RateLimiter, "take">;
  /** Aborts when the peer stops: ends waits for the upload limit. */
  signal: AbortSignal;
}

/** Builds the handler that answers every request another peer sends on a connection. */
export function createRequestHandler(deps: RequestHandlerDeps): RequestHandler {
  const { store, table, log } = deps;
  const manifestOf = (payloadId: string): Manifest => {
    const m = store.getManifest(payloadId);
    if (!m) throw new ProtocolError("unknown_payload", `No payload '${payloadId}' here`);
    return m;
  };
  return async (msg: Message, conn: PeerConnection) => {
    const who = conn.remote.peerId;
    switch (msg.type) {
      case "HAVE_REQ": {
        const { payloadId } = msg.header;
        const m = manifestOf(payloadId);
        log.record("query.have", { from: who, payloadId });
        return {
          type: "HAVE",
          header: { payloadId, chunkCount: m.chunks.length },
          body: store.have(payloadId),
        };
      }
      case "GET_CHUNK": {
        const { payloadId, index } = msg.header;
        if (!store.has(payloadId, index)) {
          throw new ProtocolError(
            "not_held",
            `Chunk '${index}' of '${payloadId}' is not held here`,
          );
        }
        const body = await store.readChunk(payloadId, index);
        await deps.uploadLimit?.take(
          body.length,
          AbortSignal.any([deps.signal, closedSignal(conn)]),
        );
        log.record("chunk.sent", { to: who, payloadId, index, bytes: body.length });
        return { type: "CHUNK", header: { payloadId, index }, body };
      }
      case "PUT_CHUNK": {
        const { payloadId, index } = msg.header;
        if (!store.getManifest(payloadId)) {
          // Learn the manifest from the peer that pushes chunks of it (the store verifies it).
          const res = await conn.request({ type: "MANIFEST_REQ", header: { payloadId } });
          const { manifest, name } = manifestFrom(res);
          await store.addManifest(payloadId, manifest, name ? { name } : undefined);
        }
        try {
          await store.writeChunk(payloadId, index, msg.body);
        } catch (err) {
          if (err instanceof IntegrityError) {
            log.record("chunk.rejected", { from: who, payloadId, index, reason: err.message });
            throw new ProtocolError("integrity", err.message);
          }
          throw err;
        }
        log.record("chunk.received", {
          from: who,
          payloadId,
          index,
          bytes: msg.body.length,
          via: "push",
        });
        return { type: "PUT_OK", header: { payloadId, index } };
      }
      case "MANIFEST_REQ": {
        const { payloadId } = msg.header;
        const m = manifestOf(payloadId);
        log.record("query.manifest", { from: who, payloadId });
        return manifestMessage(msg.requestId, payloadId, m, store.payload(payloadId)?.name);
      }
      case "PEERS_REQ": {
        const limit = msg.header.limit ?? 100;
        // Stale peers (the last attempt to reach them failed) are not passed on.
        const live = table.list().filter((p) => p.failures === 0);
        const peers: WirePeer[] = live.slice(0, limit).map((p) => ({
          peerId: p.peerId,
          host: p.host,
          ports: p.ports,
          ...(p.name ? { name: p.name } : {}),
          lastSeen: p.lastSeen,
        }));
        log.record("query.peers", { from: who, count: peers.length });
        return { type: "PEERS", header: { peers } };
      }
      case "LOG_REQ": {
        const { since, limit, type } = msg.header;
        const page = log.query({ since, limit: limit ?? 100, type });
        log.record("query.log", { from: who, count: page.records.length });
        return { type: "LOG", header: { records: page.records } };
      }
      case "PING":
        return { type: "PONG", header: { ts: msg.header.ts } };
      default:
        throw new ProtocolError("unsupported", `Cannot answer '${msg.type}'`);
    }
  };
}

const closeSignals = new WeakMap<PeerConnection, AbortSignal>();

/** A signal that aborts when the connection closes (one per connection). */
function closedSignal(conn: PeerConnection): AbortSignal {
  let signal = closeSignals.get(conn);
  if (!signal) {
    const ctrl = new AbortController();
    conn.closed.then(() => ctrl.abort(new Error("connection closed")));
    signal = ctrl.signal;
    closeSignals.set(conn, signal);
  }
  return signal;
}

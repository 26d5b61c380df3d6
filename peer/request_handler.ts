/**
 * The peer's answers to wire requests from other peers: HAVE? (its bitfield of a
 * payload; with an offer, first the decision to hold it), GET_CHUNK (a held chunk,
 * paced by the upload limit), PUT_CHUNK (a pushed chunk of an agreed payload,
 * verified and stored), MANIFEST? , PEERS? (signed records: this peer's own and those
 * of live proven peers), PAYLOADS? (what is held here), SEARCH? (this peer's index,
 * `search/`), LOG?, PING and HTTP_OPEN (a
 * tunnel stream to this peer's main HTTP server, `http_tunnel.ts`). Each
 * answer is logged; a request that cannot be served throws a `P2pError`, which the
 * connection sends back as ERROR with its code, and every refusal is an activity
 * record too.
 *
 * **Offers.** A peer accepts pushed chunks only for a payload it agreed to hold. The
 * replicating peer offers it (HAVE? with `offer`: size, chunk size, name); the offer
 * is refused when its chunk size is not `CHUNK_SIZE` or its size is over
 * `MAX_PAYLOAD_SIZE` (checked from the header, before anything is read or
 * allocated), when the bytes still missing here do not fit in the store's room less
 * what other open agreements may still fill (`store_full`), or when
 * `MAX_AGREEMENTS` are open (`busy`). Otherwise the manifest is fetched from the
 * offerer (its header checked against the offer and the limits first, then hashed
 * against the payloadId) and the answer is the bitfield held here. An agreement is
 * for one payload and one offering peer (the link proved its id); it ends when the
 * payload is complete, or `AGREEMENT_IDLE_MS` after its last push. A PUT_CHUNK
 * without one gets ERROR `not_agreed`; the store itself refuses a chunk over its
 * capacity with `store_full`.
 *
 * @module
 */
import type { RequestHandler } from "./connection.ts";
import type { PeerConnection } from "./connection.ts";
import type { ChunkStore } from "./chunk_store.ts";
import type { PeerLog } from "./activity.ts";
import type { PeerTable } from "./peer_table.ts";
import type { RateLimiter } from "./rate_limit.ts";
import type { HttpTunnels } from "./http_tunnel.ts";
import {
  errorCode,
  errorMessage,
  ForbiddenError,
  IntegrityError,
  P2pError,
  ProtocolError,
  TooLargeError,
} from "../proto/errors.ts";
import { manifestFrom, manifestMessage } from "../proto/manifest_body.ts";
import { assertManifestLimits, CHUNK_SIZE, chunkLength, type Manifest } from "../proto/manifest.ts";
import { searchOf } from "./search/registry.ts";
import { BufferPool } from "../proto/bytes.ts";
import { answerSearch } from "./search/wire.ts";
import type { Message, MessageOf, Offer, WirePayload, WirePeer } from "../proto/messages.ts";

/** Agreements to hold offered payloads open at once; one more offer gets `busy`. */
export const MAX_AGREEMENTS = 64;
/** An agreement ends this long after its offer or its last push. */
export const AGREEMENT_IDLE_MS = 120_000;
/** How long the offerer has to send the manifest of what it offers. */
const OFFER_MANIFEST_TIMEOUT_MS = 10_000;
/**
 * Buffers that served chunks are read into, given back once each answer is written:
 * on this VM every fresh 1 MiB buffer costs its page faults again (about 0.4 CPU-s
 * per GiB served, measured), a reused one does not. The extra byte is the one
 * `readChunk()` reads past the end to notice a longer file.
 */
export const SERVED_CHUNKS = new BufferPool(CHUNK_SIZE + 1, 16);

/** One payload this peer agreed to hold, pushed by one peer. */
interface Agreement {
  readonly from: string;
  /** Bytes that may still arrive under it (counted against the store's room). */
  bytes: number;
  expires: number;
}

/** What the request handler needs of its neighbours. */
export interface RequestHandlerDeps {
  store: Pick<
    ChunkStore,
    | "getManifest"
    | "payload"
    | "have"
    | "has"
    | "readChunk"
    | "writeChunk"
    | "addManifest"
    | "room"
    | "list"
  >;
  table: Pick<PeerTable, "proven" | "record">;
  /** This peer's own signed record, when it has one (it listens on one address). */
  selfRecord?: () => Promise<WirePeer | undefined>;
  log: Pick<PeerLog, "record" | "query">;
  /** Paces the chunk bytes served, when there is a cap. */
  uploadLimit?: Pick<RateLimiter, "take">;
  /** Aborts when the peer stops: ends waits for the upload limit. */
  signal: AbortSignal;
  /** The clock, in ms (tests fake it). */
  now?: () => number;
  /** Agreements open at once (default `MAX_AGREEMENTS`). */
  maxAgreements?: number;
  /** Takes the HTTP tunnels other peers open; without it HTTP_OPEN gets `unsupported`. */
  tunnels?: Pick<HttpTunnels, "accept">;
}

/** Builds the handler that answers every request another peer sends on a connection. */
export function createRequestHandler(deps: RequestHandlerDeps): RequestHandler {
  const { store, table, log } = deps;
  const now = deps.now ?? Date.now;
  const manifestOf = (payloadId: string): Manifest => {
    const m = store.getManifest(payloadId);
    if (!m) throw new ProtocolError("unknown_payload", `No payload '${payloadId}' here`);
    return m;
  };
  const agreements = new Map<string, Agreement>();
  /** The open agreements (expired ones dropped) and the bytes they may still bring. */
  const pendingBytes = (except?: string): number => {
    let n = 0;
    for (const [id, a] of agreements) {
      if (a.expires <= now() || store.payload(id)?.complete) agreements.delete(id);
      else if (id !== except) n += a.bytes;
    }
    return n;
  };
  /** Bytes of a payload not held here yet: all of it when its manifest is unknown. */
  const missingBytes = (payloadId: string, size: number): number => {
    const m = store.getManifest(payloadId);
    if (!m) return size;
    let n = 0;
    for (let i = 0; i < m.chunks.length; i++) {
      if (!store.has(payloadId, i)) n += chunkLength(m.size, i, m.chunkSize);
    }
    return n;
  };
  const refuse = (type: string, fields: Record<string, unknown>, err: unknown): never => {
    log.record(type, { ...fields, code: errorCode(err), reason: errorMessage(err) });
    throw err;
  };
  /** Decides on an offer; on yes, the manifest is held here and the agreement open. */
  const accept = async (
    payloadId: string,
    offer: Offer,
    conn: PeerConnection,
  ): Promise<void> => {
    const from = conn.remote.peerId;
    const fields = { from, payloadId, size: offer.size };
    try {
      assertManifestLimits(offer);
      const open = agreements.get(payloadId);
      if (open && open.from === from && open.expires > now()) {
        open.expires = now() + AGREEMENT_IDLE_MS;
        return;
      }
      const bytes = missingBytes(payloadId, offer.size);
      if (bytes === 0) return;
      const room = store.room() - pendingBytes(payloadId);
      if (bytes > room) {
        throw new TooLargeError(
          "store_full",
          `Cannot hold '${bytes}' more bytes: '${Math.max(0, room)}' bytes of room left here`,
        );
      }
      const max = deps.maxAgreements ?? MAX_AGREEMENTS;
      if (agreements.size >= max && !agreements.has(payloadId)) {
        throw new P2pError("busy", `Too many offers open here ('${max}'): try later`, {
          status: 429,
        });
      }
      if (!store.getManifest(payloadId)) await fetchManifest(payloadId, offer, conn);
      agreements.set(payloadId, { from, bytes, expires: now() + AGREEMENT_IDLE_MS });
      log.record("offer.accepted", { ...fields, bytes });
    } catch (err) {
      refuse("offer.refused", fields, err);
    }
  };
  /** Asks the offerer for the manifest; its header is checked before its hashes are read. */
  const fetchManifest = async (payloadId: string, offer: Offer, conn: PeerConnection) => {
    const res = await conn.request({ type: "MANIFEST_REQ", header: { payloadId } }, {
      timeoutMs: OFFER_MANIFEST_TIMEOUT_MS,
      signal: deps.signal,
    });
    if (res.header.payloadId !== payloadId || res.header.size !== offer.size) {
      throw new ProtocolError(
        "bad_manifest",
        `The manifest sent for '${payloadId}' does not match the offer`,
      );
    }
    assertManifestLimits(res.header);
    const { manifest, name } = manifestFrom(res);
    await store.addManifest(payloadId, manifest, name ? { name } : undefined);
  };
  const put = async (msg: MessageOf<"PUT_CHUNK">, who: string) => {
    const { payloadId, index } = msg.header;
    const fields = { from: who, payloadId, index, bytes: msg.body.length };
    // Held already (another position with the same bytes, say): nothing to take.
    if (store.has(payloadId, index)) return;
    const agreed = agreements.get(payloadId);
    if (!agreed || agreed.from !== who || agreed.expires <= now()) {
      refuse(
        "chunk.refused",
        fields,
        new ForbiddenError(
          "not_agreed",
          `Cannot take chunk '${index}' of '${payloadId}': no accepted offer of it from this peer`,
        ),
      );
    }
    try {
      await store.writeChunk(payloadId, index, msg.body);
    } catch (err) {
      if (err instanceof IntegrityError) {
        log.record("chunk.rejected", { from: who, payloadId, index, reason: err.message });
        throw new ProtocolError("integrity", err.message);
      }
      refuse("chunk.refused", fields, err);
    }
    agreed!.bytes = Math.max(0, agreed!.bytes - msg.body.length);
    agreed!.expires = now() + AGREEMENT_IDLE_MS;
    if (store.payload(payloadId)?.complete) agreements.delete(payloadId);
    log.record("chunk.received", { ...fields, via: "push" });
  };
  return async (msg: Message, conn: PeerConnection) => {
    const who = conn.remote.peerId;
    switch (msg.type) {
      case "HAVE_REQ": {
        const { payloadId, offer } = msg.header;
        if (offer) await accept(payloadId, offer, conn);
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
        const body = await store.readChunk(payloadId, index, SERVED_CHUNKS);
        const sent = () => void SERVED_CHUNKS.release(body);
        try {
          await deps.uploadLimit?.take(
            body.length,
            AbortSignal.any([deps.signal, closedSignal(conn)]),
          );
        } catch (err) {
          sent();
          throw err;
        }
        log.record("chunk.sent", { to: who, payloadId, index, bytes: body.length });
        return { type: "CHUNK", header: { payloadId, index }, body, sent };
      }
      case "PUT_CHUNK": {
        await put(msg, who);
        return {
          type: "PUT_OK",
          header: { payloadId: msg.header.payloadId, index: msg.header.index },
        };
      }
      case "MANIFEST_REQ": {
        const { payloadId } = msg.header;
        const m = manifestOf(payloadId);
        log.record("query.manifest", { from: who, payloadId });
        return manifestMessage(msg.requestId, payloadId, m, store.payload(payloadId)?.name);
      }
      case "PEERS_REQ": {
        const limit = msg.header.limit ?? 100;
        // Signed records only: this peer's own, then those of live peers proven at the
        // address their record names (a learned or stale address is not passed on).
        const own = await deps.selfRecord?.();
        const peers: WirePeer[] = own ? [own] : [];
        for (const p of table.proven()) {
          const r = table.record(p.peerId);
          if (!r || r.host !== p.host || r.ports.chunk !== p.ports.chunk) continue;
          peers.push({ ...r, lastSeen: p.lastSeen });
        }
        peers.length = Math.min(peers.length, limit);
        log.record("query.peers", { from: who, count: peers.length });
        return { type: "PEERS", header: { peers } };
      }
      case "PAYLOADS_REQ": {
        const payloads: WirePayload[] = store.list().slice(0, msg.header.limit ?? 1000).map((
          p,
        ) => ({
          payloadId: p.payloadId,
          size: p.size,
          chunks: p.chunks,
          held: p.held,
          complete: p.complete,
          ...(p.name ? { name: p.name } : {}),
        }));
        log.record("query.payloads", { from: who, count: payloads.length });
        return { type: "PAYLOADS", header: { payloads } };
      }
      case "SEARCH_REQ": {
        // The index this peer's catalogue registered for its store (search/registry.ts).
        const search = searchOf(store);
        if (!search) throw new ProtocolError("unsupported", "This peer has no search index");
        const answer = await answerSearch(await search.index(), msg.header);
        log.record("query.search", { from: who, count: answer.header.hits.length });
        return answer;
      }
      case "LOG_REQ": {
        const { since, limit, type } = msg.header;
        const page = log.query({ since, limit: limit ?? 100, type });
        log.record("query.log", { from: who, count: page.records.length });
        return { type: "LOG", header: { records: page.records } };
      }
      case "PING":
        return { type: "PONG", header: { ts: msg.header.ts } };
      case "HTTP_OPEN":
        // Without tunnels, undefined: answered HTTP_RESET `unsupported`.
        return deps.tunnels?.accept(msg, conn);
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

/**
 * A fake peer for the control API's tests: a real `PeerLog` in a temporary folder,
 * an in-memory store of two payloads (one complete, one not), and `put()`, `get()`,
 * `where()`, `remoteLog()`, `networkPayloads()` and `discover()` that answer with fixed,
 * realistic values and report progress as the real node does. Test code only.
 *
 * @module
 */
import { PeerLog } from "./activity.ts";
import type { ControlNode } from "./control.ts";
import type { KnownPeer } from "./peer_table.ts";
import type {
  DownloadProgress,
  DownloadResult,
  PutProgress,
  PutResult,
  StatusAnswer,
  StoredPayload,
} from "../proto/control.ts";
import { NotFoundError, P2pError } from "../proto/errors.ts";
import { ControlAuth, randomToken } from "./control_token.ts";

export const PEER_A = "a1".repeat(20);
export const PEER_B = "b2".repeat(20);
/** A complete payload of 5 bytes in 2 chunks, whose chunks have the same hash. */
export const COMPLETE = "c".repeat(64);
export const COMPLETE_BYTES = new TextEncoder().encode("hello");
/** A payload of which 1 chunk of 3 is held. */
export const PARTIAL = "d".repeat(64);
const HASH = "e".repeat(64);

/** A fake node, its log, and what the test may change. */
export interface FakeNode extends ControlNode, AsyncDisposable {
  readonly log: PeerLog;
  /** Listeners now following the log and the store (open streams). */
  listeners(): number;
  /** Aborts `signal`, as a stopping peer does. */
  stop(): void;
  /** The error `remoteLog()` throws, if any. */
  remoteLogError?: unknown;
  /** The error `where()` throws, if any. */
  whereError?: unknown;
  /** The error `networkPayloads()` throws, if any. */
  networkError?: unknown;
  /** When set, `get()` waits for it after its first progress. */
  downloadGate?: Promise<void>;
}

/** A fake node over a real activity log in a temporary folder. */
export async function fakeNode(): Promise<FakeNode> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-control-" });
  const log = await PeerLog.open(`${dir}/activity.jsonl`);
  const abort = new AbortController();
  const chunkListeners = new Set<(payloadId: string, index: number) => void>();
  const payloads = new Map<string, StoredPayload>([
    [COMPLETE, {
      payloadId: COMPLETE,
      size: 5,
      chunkSize: 4,
      chunks: 2,
      held: 2,
      complete: true,
      name: "dir/two words é.txt",
      addedAt: 1_700_000_000_000,
    }],
    [PARTIAL, {
      payloadId: PARTIAL,
      size: 10,
      chunkSize: 4,
      chunks: 3,
      held: 1,
      complete: false,
      addedAt: 1_700_000_000_001,
    }],
  ]);
  const known: KnownPeer[] = [{
    peerId: PEER_B,
    host: "127.0.0.3",
    ports: { chunk: 4001, http: 4002 },
    name: "bob",
    sources: ["seed", "exchange"],
    firstSeen: 1_700_000_000_000,
    lastSeen: 1_700_000_001_000,
    failures: 1,
    rttMs: 2,
  }];
  // The real log, with its followers counted.
  const following = new Set<() => void>();
  const follow = log.follow.bind(log);
  log.follow = (listener) => {
    const stop = follow(listener);
    const off = () => {
      following.delete(off);
      stop();
    };
    following.add(off);
    return off;
  };
  const node: FakeNode = {
    log,
    listeners: () => following.size + chunkListeners.size,
    signal: abort.signal,
    stop: () => abort.abort(new Error("peer is stopping")),
    store: {
      list: () => [...payloads.values()],
      payload: (id) => payloads.get(id),
      getManifest: (id) => {
        const p = payloads.get(id);
        return p ? { chunks: Array.from({ length: p.chunks }, () => HASH) } : undefined;
      },
      onChunk: (listener) => {
        chunkListeners.add(listener);
        return () => chunkListeners.delete(listener);
      },
      exportStream: () => new Blob([COMPLETE_BYTES]).stream(),
      pin: (id) => {
        const p = payloads.get(id);
        if (p) p.pinned = true;
        return Promise.resolve();
      },
      remove: (id) => Promise.resolve(payloads.delete(id) ? 4 : 0),
      usedBytes: 9,
      capacity: () => 1000,
    },
    table: { list: () => known },
    status: (): StatusAnswer => ({
      peerId: PEER_A,
      name: "alice",
      version: "0.0.0-test",
      ports: { chunk: 4000, pingback: 4003, http: 4004 },
      host: "127.0.0.2",
      dataDir: dir,
      tracker: null,
      payloads: payloads.size,
      completePayloads: 1,
      storedBytes: 9,
      knownPeers: known.length,
      connections: 0,
      downloads: [],
      http: { connections: 1, requests: 2, forwarded: 2, failures: 0, idleUpstream: 0 },
      memory: { rss: 3, heapUsed: 2, external: 1 },
    }),
    async put(source, name, onProgress?: (e: PutProgress) => void): Promise<PutResult> {
      let size = 0;
      for await (const part of source) size += part.length;
      if (size === 0) throw new P2pError("empty_payload", "Payload is empty", { status: 400 });
      const payloadId = "f".repeat(64);
      log.record("payload.put", { payloadId, size, chunks: 1, name });
      onProgress?.({ type: "stored", payloadId, size, chunks: 1 });
      onProgress?.({ type: "replicated", index: 0, copies: 1, done: 1, chunks: 1 });
      return {
        payloadId,
        size,
        chunks: 1,
        created: true,
        replicas: { [PEER_B]: 1 },
        underReplicated: 0,
      };
    },
    async get(payloadId, onProgress?: (p: DownloadProgress) => void): Promise<DownloadResult> {
      const p = payloads.get(payloadId);
      if (!p) {
        throw new NotFoundError("unknown_payload", `Cannot find the manifest of '${payloadId}'`);
      }
      const progress = (done: number): DownloadProgress => ({
        payloadId,
        size: p.size,
        chunks: p.chunks,
        done,
        bytes: done * p.chunkSize,
        fetchedBytes: (done - p.held) * p.chunkSize,
        seconds: 0.5,
        sources: 1,
      });
      onProgress?.(progress(p.held));
      await node.downloadGate;
      // One chunk received fills every position with the same hash.
      for (let i = p.held; i < p.chunks; i++) for (const f of chunkListeners) f(payloadId, i);
      log.record("chunk.received", { from: PEER_B, payloadId, index: p.held, via: "download" });
      onProgress?.(progress(p.chunks));
      return {
        payloadId,
        size: p.size,
        bytes: 8,
        seconds: 0.5,
        resumed: p.held,
        chunksBySource: { [PEER_B]: 1 },
        dropped: [],
      };
    },
    remove: (id) => node.store.remove(id),
    where(payloadId) {
      if (node.whereError !== undefined) return Promise.reject(node.whereError);
      return Promise.resolve({
        chunks: 3,
        rows: [
          {
            peerId: PEER_A,
            name: "alice",
            address: "127.0.0.2:4000",
            have: "80",
            count: 1,
            via: "self",
          },
          { peerId: PEER_B, address: "127.0.0.3:4001", have: "e0", count: 3, via: "HAVE?" },
        ].filter(() => payloads.has(payloadId)),
      });
    },
    remoteLog(_peerId, _since, _limit, _type) {
      if (node.remoteLogError !== undefined) return Promise.reject(node.remoteLogError);
      return Promise.resolve([
        { id: 1, ts: "2026-01-01T00:00:00.000Z", type: "peer.start", peerId: PEER_B },
        { id: 2, ts: "2026-01-01T00:00:01.000Z", type: "conn.open", peerId: PEER_A },
        { id: "three", type: 3 },
      ]);
    },
    networkPayloads() {
      if (node.networkError !== undefined) return Promise.reject(node.networkError);
      return Promise.resolve({
        payloads: [{
          payloadId: COMPLETE,
          name: "two.bin",
          size: 5,
          chunks: 2,
          holders: [
            { peerId: PEER_A, name: "alice", held: 2, complete: true },
            { peerId: PEER_B, held: 1, complete: false },
          ],
        }],
        errors: [{ source: "tracker", message: "HTTP 503" }],
      });
    },
    discover: (range, onProgress) => {
      // Two probes of two, as a scan tells them.
      onProgress?.({ phase: "devices", devices: 1, probed: 0, total: 2, found: 0 });
      onProgress?.({ phase: "probing", devices: 1, probed: 1, total: 2, found: 1 });
      onProgress?.({ phase: "probing", devices: 1, probed: 2, total: 2, found: 1 });
      return Promise.resolve({
        ranges: [range ?? "127.0.0.2-127.0.0.3"],
        devices: 1,
        probed: 2,
        found: [{
          peerId: PEER_B,
          name: "bob",
          host: "127.0.0.3",
          ports: { pingback: 4005, chunk: 4001 },
          rttMs: 1.5,
          change: "known",
        }],
        rejected: [{ address: "127.0.0.4", reason: "no answer" }],
        stale: [],
        seconds: 0.25,
      });
    },
    async [Symbol.asyncDispose]() {
      abort.abort();
      log.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  return node;
}

/** The owner's token of the fake peers' control APIs in tests. */
export const OWNER_TOKEN = randomToken();

/** A `ControlAuth` of `OWNER_TOKEN`, for `createControlApp()` in tests. */
export function ownerAuth(): ControlAuth {
  return new ControlAuth(OWNER_TOKEN);
}

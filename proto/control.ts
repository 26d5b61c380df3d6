/**
 * The contract of a peer's control API under `/_p2p/`: a zod schema for every
 * request (path, query, body) and every answer (JSON bodies, NDJSON events, server-sent
 * events). The peer builds its answers as these types (`z.infer`), and every client
 * (the CLI, other peers' network catalogue, the tests) parses what it reads with them.
 * Error answers are `ErrorBody` of `proto/error_body.ts`. Pure: no I/O.
 *
 * | Route                                   | Answer                                  |
 * | --------------------------------------- | --------------------------------------- |
 * | `GET /_p2p/status`                      | `StatusAnswer`                          |
 * | `GET /_p2p/peers`                       | `PeersAnswer`                           |
 * | `POST /_p2p/discover` (`DiscoverRequest`) | `DiscoveryReport`; `?progress=1`: NDJSON `DiscoverEvent` |
 * | `GET /_p2p/payloads`                    | `PayloadsAnswer`                        |
 * | `GET /_p2p/payloads/:ref`               | `PayloadInfo` (held here or not)        |
 * | `DELETE /_p2p/payloads/:ref` (`RemoveQuery`) | `RemoveAnswer`                     |
 * | `GET /_p2p/network/payloads`            | `NetworkPayloadsAnswer`                 |
 * | `POST /_p2p/payloads?name=` (`PutQuery`) | NDJSON of `PutEvent`                   |
 * | `POST /_p2p/downloads/:ref`             | NDJSON of `DownloadEvent`               |
 * | `DELETE /_p2p/downloads/:ref`           | `CancelAnswer`                          |
 * | `POST /_p2p/downloads/:ref/to-file` (`SaveToFileRequest`) | NDJSON of `DownloadEvent`, the file written by the peer |
 * | `POST /_p2p/payloads/from-file` (`PutFileRequest`) | NDJSON of `PutEvent`, the file read by the peer |
 * | `GET /_p2p/payloads/:id/content`        | the bytes (`ContentQuery`)              |
 * | `GET /_p2p/payloads/:id/where`          | `WhereAnswer`                           |
 * | `GET /_p2p/log` (`LogQuery`)            | `ActivityPage`, or NDJSON of `ActivityRecord` with `follow=1` |
 * | `GET /_p2p/events` (`EventsQuery`)      | server-sent `activity` events (`ActivityRecord`) |
 * | `GET /_p2p/login?once=` (`LoginQuery`)  | 303 to `/`, with the `p2p_token` cookie |
 * | `POST /_p2p/login` (`LoginRequest`)     | 204, with the `p2p_token` cookie        |
 * | `POST /_p2p/logout`                     | 204, the cookie cleared                 |
 * | `POST /_p2p/login-links`                | `LoginLinkAnswer` (a new one-time link) |
 * | `GET /_p2p/search?q=&limit=`            | `SearchAnswer` of `proto/search.ts`     |
 * | `GET`/`PUT /_p2p/search/meta/:ref`      | `PayloadMeta` of `proto/search.ts`      |
 *
 * Wherever a route takes a payload or a peer (`:ref`, `peer=`), it takes its whole id,
 * a unique prefix of at least 6 hex digits, or its unique name (`peer/control_ids.ts`);
 * several matches are 409 `ambiguous_id`, none 404 `unknown_payload`/`unknown_peer`.
 * Closing a download's answer before it ends, or `DELETE /_p2p/downloads/:ref`,
 * cancels the download when no one else waits for it (its chunks stay: a new one
 * resumes). Ids are printed in their short form, `shortId()`: 12 hex digits.
 *
 * Every route needs the owner's token (`Authorization: Bearer <token>` or the
 * `p2p_token` cookie; see `peer/control_token.ts`), but the two login routes, which
 * take a one-time code or the token itself; without it the answer is 401
 * `unauthorized`. A request a page of another origin sends is refused with 403
 * `forbidden_origin` (see `peer/origin_guard.ts`).
 *
 * ```ts
 * import { DownloadEvent, PayloadsAnswer } from "./control.ts";
 *
 * const list = PayloadsAnswer.parse({ payloads: [] });
 * console.assert(list.payloads.length === 0);
 * const e = DownloadEvent.parse({ type: "chunk", index: 3, source: "local" });
 * console.assert(e.type === "chunk" && e.index === 3);
 * ```
 *
 * @module
 */
import { z } from "zod";
import { ActivityPage, ActivityRecord } from "./activity.ts";
import { DiscoverDone, DiscoverProgress, DiscoverRequest, DiscoveryReport } from "./discovery.ts";
import { PayloadId, PeerId } from "./ids.ts";
import { WirePorts } from "./messages.ts";

export { ActivityPage, ActivityRecord, DiscoverProgress, DiscoverRequest, DiscoveryReport };

/** The path prefix of every control route. */
export const CONTROL_PREFIX = "/_p2p";

/** Hex digits of an id's short form, as tables and messages print it. */
export const SHORT_ID = 12;

/** The short form of an id (its first 12 hex digits), as tables and messages print it. */
export function shortId(id: string): string {
  return id.slice(0, SHORT_ID);
}

// ---- login ----

/** `GET /_p2p/login?once=CODE`: a one-time code the peer printed at start. */
export const LoginQuery = z.object({ once: z.string().max(200) });
/** `GET /_p2p/login`'s query. */
export type LoginQuery = z.infer<typeof LoginQuery>;

/** `POST /_p2p/login`: the owner's token, as the web app's form sends it. */
export const LoginRequest = z.object({ token: z.string().max(200) });
/** `POST /_p2p/login`'s body. */
export type LoginRequest = z.infer<typeof LoginRequest>;

/** `POST /_p2p/login-links`: a new one-time login link, as a path on the peer's origin. */
export const LoginLinkAnswer = z.object({
  /** `/_p2p/login?once=CODE`. */
  path: z.string().startsWith("/_p2p/login?once="),
  /** When the code expires, ms since the epoch. */
  expiresAt: z.number().nonnegative(),
});
/** `POST /_p2p/login-links`. */
export type LoginLinkAnswer = z.infer<typeof LoginLinkAnswer>;

const Count = z.number().int().nonnegative();
/** Milliseconds since the epoch. */
const EpochMs = z.number().nonnegative();

// ---- status ----

/** The tracker as a peer sees it: its URL and whether the last contact worked. */
export const TrackerState = z.object({
  url: z.string(),
  ok: z.boolean(),
  lastError: z.string().optional(),
  /** When the tracker last answered, ms since the epoch. */
  lastContact: EpochMs.optional(),
});
/** The tracker as a peer sees it. */
export type TrackerState = z.infer<typeof TrackerState>;

/** Counters of the peer's main HTTP server (the relay), from its start. */
export const HttpStats = z.object({
  /** Client connections open now. */
  connections: Count,
  /** Requests read. */
  requests: Count,
  /** Requests sent to an upstream. */
  forwarded: Count,
  /** Failures (502, 504, 508, answers cut short). */
  failures: Count,
  /** Upstream connections kept idle now. */
  idleUpstream: Count,
});
/** Counters of the peer's main HTTP server. */
export type HttpStats = z.infer<typeof HttpStats>;

/** Memory of the peer's process, in bytes. */
export const MemoryStats = z.object({
  rss: Count,
  heapUsed: Count,
  external: Count,
});
/** Memory of the peer's process. */
export type MemoryStats = z.infer<typeof MemoryStats>;

/** The chunk store's disk use, in bytes. */
export const StoreUsage = z.object({
  /** Bytes of the chunks held in payload files (a chunk two payloads share counts twice). */
  usedBytes: Count,
  /** Most bytes the store may hold (`--max-store`, or what keeps 10 % of the disk free). */
  capacityBytes: Count,
});
/** The chunk store's disk use. */
export type StoreUsage = z.infer<typeof StoreUsage>;

/** `GET /_p2p/status`: a summary of the peer, what `p2p status` prints. */
export const StatusAnswer = z.object({
  peerId: PeerId,
  name: z.string(),
  /** Program version. */
  version: z.string(),
  ports: WirePorts,
  /** The address the peer listens on (may be a wildcard). */
  host: z.string(),
  dataDir: z.string(),
  tracker: TrackerState.nullable(),
  /** Payloads in the store. */
  payloads: Count,
  completePayloads: Count,
  storedBytes: Count,
  knownPeers: Count,
  /** TCP connections to other peers, both ways. */
  connections: Count,
  /** Payloads being downloaded now. */
  downloads: z.array(PayloadId),
  /** Absent until the main HTTP server runs. */
  http: HttpStats.optional(),
  memory: MemoryStats,
  /** The chunk store's disk use (absent from peers of older versions). */
  store: StoreUsage.optional(),
});
/** `GET /_p2p/status`. */
export type StatusAnswer = z.infer<typeof StatusAnswer>;

// ---- peers ----

/** How a peer came to be known. */
export const PeerSource = z.enum(["seed", "tracker", "exchange", "inbound", "scan"]);
/** How a peer came to be known. */
export type PeerSource = z.infer<typeof PeerSource>;

/** A known peer, as the peer table keeps it. Times are ms since the epoch. */
export const KnownPeer = z.object({
  peerId: PeerId,
  host: z.string(),
  ports: WirePorts,
  name: z.string().optional(),
  publicKey: z.string().optional(),
  sources: z.array(PeerSource),
  firstSeen: EpochMs,
  lastSeen: EpochMs,
  /** Failed contacts in a row. */
  failures: Count,
  rttMs: z.number().nonnegative().optional(),
});
/** A known peer. */
export type KnownPeer = z.infer<typeof KnownPeer>;

/** One row of `GET /_p2p/peers`: a known peer, `stale` when its last contact failed. */
export const PeerRow = KnownPeer.extend({ stale: z.boolean() });
/** One row of `GET /_p2p/peers`. */
export type PeerRow = z.infer<typeof PeerRow>;

/** `GET /_p2p/peers`: the peers this peer knows. */
export const PeersAnswer = z.object({ peers: z.array(PeerRow) });
/** `GET /_p2p/peers`. */
export type PeersAnswer = z.infer<typeof PeersAnswer>;

// ---- payloads ----

/** A payload in a peer's store: its size, chunks, how many are held here. */
export const StoredPayload = z.object({
  payloadId: PayloadId,
  size: Count,
  chunkSize: Count,
  /** Number of chunks. */
  chunks: Count,
  /** Number of chunks held. */
  held: Count,
  complete: z.boolean(),
  name: z.string().max(255).optional(),
  /** When the manifest was added, ms since the epoch. */
  addedAt: EpochMs,
  /** Put or got by the owner here; false for a replica held for other peers. */
  pinned: z.boolean().optional(),
});
/** A payload in a peer's store. */
export type StoredPayload = z.infer<typeof StoredPayload>;

/** Most payloads a client reads from one list. */
export const MAX_LISTED_PAYLOADS = 10_000;

/** `GET /_p2p/payloads`: the payloads in this peer's store, newest first. */
export const PayloadsAnswer = z.object({
  payloads: z.array(StoredPayload).max(MAX_LISTED_PAYLOADS),
});
/** `GET /_p2p/payloads`. */
export type PayloadsAnswer = z.infer<typeof PayloadsAnswer>;

/** A peer holding some chunks of a payload, in the network catalogue. */
export const PayloadHolder = z.object({
  peerId: PeerId,
  name: z.string().optional(),
  held: Count,
  complete: z.boolean(),
});
/** A peer holding some chunks of a payload. */
export type PayloadHolder = z.infer<typeof PayloadHolder>;

/**
 * `GET /_p2p/payloads/:ref`: the payload a reference names, held here (`here`, with
 * what is held) or known on the network.
 */
export const PayloadInfo = z.object({
  payloadId: PayloadId,
  name: z.string().max(255).optional(),
  /** Absent when only its id is known (not here, not in the network catalogue). */
  size: Count.optional(),
  chunks: Count.optional(),
  /** Whether this peer's store has its manifest. */
  here: z.boolean(),
  held: Count,
  complete: z.boolean(),
  pinned: z.boolean(),
});
/** `GET /_p2p/payloads/:ref`. */
export type PayloadInfo = z.infer<typeof PayloadInfo>;

/** `DELETE /_p2p/payloads/:ref` query: `force=1` removes even a last known copy. */
export const RemoveQuery = z.object({ force: z.enum(["0", "1", "true", "false"]).optional() });
/** `DELETE /_p2p/payloads/:ref` query. */
export type RemoveQuery = z.infer<typeof RemoveQuery>;

/** `DELETE /_p2p/payloads/:ref`: what was removed from this peer's store. */
export const RemoveAnswer = z.object({
  payloadId: PayloadId,
  name: z.string().max(255).optional(),
  /** Bytes of chunks removed with the payload's file. */
  freedBytes: Count,
  /** Chunks of which this peer held the last known copy (removed with `force`). */
  lastCopies: Count,
});
/** `DELETE /_p2p/payloads/:ref`. */
export type RemoveAnswer = z.infer<typeof RemoveAnswer>;

/** `DELETE /_p2p/downloads/:ref`: the download's open answers that were closed. */
export const CancelAnswer = z.object({ payloadId: PayloadId, cancelled: Count });
/** `DELETE /_p2p/downloads/:ref`. */
export type CancelAnswer = z.infer<typeof CancelAnswer>;

/** A payload somewhere on the network. */
export const NetworkPayload = z.object({
  payloadId: PayloadId,
  name: z.string().optional(),
  size: Count,
  chunks: Count,
  /** Peers that hold some of its chunks (the asked peer included). */
  holders: z.array(PayloadHolder),
});
/** A payload somewhere on the network. */
export type NetworkPayload = z.infer<typeof NetworkPayload>;

/** A source of the catalogue (a peerId, or `tracker`) that could not be read. */
export const SourceError = z.object({ source: z.string(), message: z.string() });
/** A source of the catalogue that could not be read. */
export type SourceError = z.infer<typeof SourceError>;

/** `GET /_p2p/network/payloads`: the payloads known on the network, most held first. */
export const NetworkPayloadsAnswer = z.object({
  payloads: z.array(NetworkPayload),
  errors: z.array(SourceError),
});
/** `GET /_p2p/network/payloads`. */
export type NetworkPayloadsAnswer = z.infer<typeof NetworkPayloadsAnswer>;

/** One holder of a payload's chunk positions. */
export const WhereRow = z.object({
  peerId: z.string(),
  name: z.string().optional(),
  /** `host:port` of its chunk service, or the tracker's URL. */
  address: z.string(),
  /** Bitfield of the positions it holds (MSB first), in hex. */
  have: z.string().regex(/^(?:[0-9a-f]{2})*$/, "must be hex bytes"),
  /** Positions held. */
  count: Count,
  /** How it was learnt: `self`, `HAVE?` or `tracker`. */
  via: z.string(),
});
/** One holder of a payload's chunk positions. */
export type WhereRow = z.infer<typeof WhereRow>;

/** `GET /_p2p/payloads/:id/where`: who holds which chunk positions. */
export const WhereAnswer = z.object({
  /** The payload the reference named (absent from peers of older versions). */
  payloadId: PayloadId.optional(),
  chunks: Count,
  rows: z.array(WhereRow),
});
/** `GET /_p2p/payloads/:id/where`. */
export type WhereAnswer = z.infer<typeof WhereAnswer>;

// ---- NDJSON events ----

/** The last event of a stream that failed. */
export const ErrorEvent = z.object({
  type: z.literal("error"),
  message: z.string(),
  /** The error class's name. */
  name: z.string(),
  /** The error's code, when it was a `P2pError`. */
  code: z.string().optional(),
});
/** The last event of a stream that failed. */
export type ErrorEvent = z.infer<typeof ErrorEvent>;

/** A line of `POST /_p2p/discover?progress=1`: progress, then `done` (or `error`). */
export const DiscoverEvent = z.discriminatedUnion("type", [
  DiscoverProgress,
  DiscoverDone,
  ErrorEvent,
]);
/** A line of a streamed discovery. */
export type DiscoverEvent = z.infer<typeof DiscoverEvent>;

/** What `put()` did: the payload, and the chunk copies pushed to other peers. */
export const PutResult = z.object({
  payloadId: PayloadId,
  size: Count,
  chunks: Count,
  /** False when the store already had the payload. */
  created: z.boolean(),
  /** Chunk copies pushed per target peer. */
  replicas: z.record(z.string(), Count),
  /** Chunks that got fewer copies than asked for. */
  underReplicated: Count,
});
/** What `put()` did. */
export type PutResult = z.infer<typeof PutResult>;

/** A put's payload is stored (and announced); replication follows. */
export const StoredEvent = z.object({
  type: z.literal("stored"),
  payloadId: PayloadId,
  size: Count,
  chunks: Count,
});
/** A put's payload is stored. */
export type StoredEvent = z.infer<typeof StoredEvent>;

/** One chunk of a put was pushed to `copies` other peers; `done` of `chunks` so far. */
export const ReplicatedEvent = z.object({
  type: z.literal("replicated"),
  index: Count,
  copies: Count,
  done: Count,
  chunks: Count,
});
/** One chunk of a put was pushed. */
export type ReplicatedEvent = z.infer<typeof ReplicatedEvent>;

/** What `put()` reports while it runs. */
export const PutProgress = z.discriminatedUnion("type", [StoredEvent, ReplicatedEvent]);
/** What `put()` reports while it runs. */
export type PutProgress = z.infer<typeof PutProgress>;

/** The end of a put. */
export const PutDoneEvent = PutResult.extend({ type: z.literal("done") });
/** The end of a put. */
export type PutDoneEvent = z.infer<typeof PutDoneEvent>;

/** One line of `POST /_p2p/payloads`: stored, replicated…, then done or error. */
export const PutEvent = z.discriminatedUnion("type", [
  StoredEvent,
  ReplicatedEvent,
  PutDoneEvent,
  ErrorEvent,
]);
/** One line of `POST /_p2p/payloads`. */
export type PutEvent = z.infer<typeof PutEvent>;

/** A download's progress, reported after every chunk and whenever a source comes or goes. */
export const DownloadProgress = z.object({
  payloadId: PayloadId,
  size: Count,
  chunks: Count,
  /** Chunk positions held. */
  done: Count,
  /** Bytes held. */
  bytes: Count,
  /** Bytes fetched in this run (not counting chunks held before it started). */
  fetchedBytes: Count,
  seconds: z.number().nonnegative(),
  /** Sources in use now. */
  sources: Count,
});
/** A download's progress. */
export type DownloadProgress = z.infer<typeof DownloadProgress>;

/** The outcome of a download. */
export const DownloadResult = z.object({
  payloadId: PayloadId,
  size: Count,
  /** Bytes fetched in this run. */
  bytes: Count,
  seconds: z.number().nonnegative(),
  /** Chunks already held when the run started. */
  resumed: Count,
  chunksBySource: z.record(z.string(), Count),
  dropped: z.array(z.object({ source: z.string(), reason: z.string() })),
});
/** The outcome of a download. */
export type DownloadResult = z.infer<typeof DownloadResult>;

/** Progress of a download (at most every 100 ms, and at the end). */
export const ProgressEvent = DownloadProgress.extend({ type: z.literal("progress") });
/** Progress of a download. */
export type ProgressEvent = z.infer<typeof ProgressEvent>;

/** A chunk position became held, with the source of its bytes (a peerId, `tracker`, `local`). */
export const ChunkEvent = z.object({
  type: z.literal("chunk"),
  index: Count,
  source: z.string(),
});
/** A chunk position became held. */
export type ChunkEvent = z.infer<typeof ChunkEvent>;

/** The end of a download. */
export const DownloadDoneEvent = DownloadResult.extend({ type: z.literal("done") });
/** The end of a download. */
export type DownloadDoneEvent = z.infer<typeof DownloadDoneEvent>;

/** One line of `POST /_p2p/downloads/:id`: progress and chunk…, then done or error. */
export const DownloadEvent = z.discriminatedUnion("type", [
  ProgressEvent,
  ChunkEvent,
  DownloadDoneEvent,
  ErrorEvent,
]);
/** One line of `POST /_p2p/downloads/:id`. */
export type DownloadEvent = z.infer<typeof DownloadEvent>;

// ---- server-sent events ----

/** The server-sent events of `GET /_p2p/events`, by event name: the data of each. */
export const ServerEvents = {
  /** An activity record; the SSE `id:` is its `id`, so `Last-Event-ID` resumes after it. */
  activity: ActivityRecord,
} as const;
/** The name of a server-sent event. */
export type ServerEventName = keyof typeof ServerEvents;

/** The `Last-Event-ID` header of a reconnecting `EventSource`: the last record id it saw. */
export const LastEventId = z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** The comment line sent every `SSE_PING_MS` to keep idle connections open through proxies. */
export const SSE_PING = ": ping";
/** Period of the SSE keep-alive comment. */
export const SSE_PING_MS = 15_000;

// ---- requests ----

/** The `:id` of payload routes: a payload's id, a prefix of it or its name (a reference). */
export const PayloadRef = z.string().trim().min(1, "is empty").max(255, "is too long");

/** The `:id` of payload routes, when the whole id is needed. */
export const PayloadIdParam = PayloadId;

/** `POST /_p2p/payloads` query: the payload's name, if any. The body is the bytes. */
export const PutQuery = z.object({
  name: z.string().min(1, "must be 1 to 255 characters").max(
    255,
    "must be 1 to 255 characters",
  ).optional(),
});
/** `POST /_p2p/payloads` query. */
export type PutQuery = z.infer<typeof PutQuery>;

/** An absolute path on the peer's machine (the peer checks the rest). */
const LocalPath = z.string().min(2, "is empty").max(4096, "is too long")
  .startsWith("/", "must be an absolute path");

/**
 * `POST /_p2p/downloads/:ref/to-file` body: the file the peer downloads into itself (a
 * client on the peer's machine, `p2p get -o`); `force` replaces an existing file.
 */
export const SaveToFileRequest = z.object({ path: LocalPath, force: z.boolean().optional() });
/** `POST /_p2p/downloads/:ref/to-file` body. */
export type SaveToFileRequest = z.infer<typeof SaveToFileRequest>;

/** `POST /_p2p/payloads/from-file` body: a file on the peer's machine to put, and its name. */
export const PutFileRequest = z.object({ path: LocalPath, name: PutQuery.shape.name });
/** `POST /_p2p/payloads/from-file` body. */
export type PutFileRequest = z.infer<typeof PutFileRequest>;

/** `GET /_p2p/payloads/:id/content` query: `download` (any value) asks for an attachment. */
export const ContentQuery = z.object({ download: z.string().optional() });
/** `GET /_p2p/payloads/:id/content` query. */
export type ContentQuery = z.infer<typeof ContentQuery>;

/** `GET /_p2p/events` query: a `type` filter (equal, or a dotted prefix). */
export const EventsQuery = z.object({
  type: z.string().min(1, "must be 1 to 64 characters").max(
    64,
    "must be 1 to 64 characters",
  ).optional(),
});
/** `GET /_p2p/events` query. */
export type EventsQuery = z.infer<typeof EventsQuery>;

/**
 * `GET /_p2p/log` query: records after `since` (none: the newest), at most `limit`,
 * of a `type`; another peer's log with `peer`; `follow=1` streams this peer's log.
 */
export const LogQuery = z.object({
  since: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  type: z.string().min(1).max(64).optional(),
  /** Another peer: its id, a prefix of it or its name. */
  peer: z.string().trim().min(1).max(255).optional(),
  follow: z.enum(["0", "1", "true", "false"]).optional(),
});
/** `GET /_p2p/log` query. */
export type LogQuery = z.infer<typeof LogQuery>;

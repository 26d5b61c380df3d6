/**
 * The tracker's HTTP API: every request and response body, as zod schemas. The
 * tracker validates its input with them, and clients (the peer, the CLI) parse
 * answers with them. What proves membership and identity (the `Authorization`
 * header, the signatures in `POST /peers`, `DELETE /peers/{id}` and
 * `POST /payloads/{id}/have`) is in `tracker_auth.ts`.
 *
 * @module
 */
import { z } from "zod";
import { PayloadId, PeerId, Port, Sha256Hex } from "./ids.ts";
import { MAX_CHUNK_SIZE } from "./manifest.ts";
import { MAX_TAGS, Tag } from "./search.ts";

/** A host as given by a client: a hostname, an IPv4 or an IPv6 address (no brackets). */
export const Host = z.string().min(1).max(253).regex(
  /^[0-9A-Za-z.:_%-]+$/,
  "must be a hostname or an IP address",
);

/** The ports a peer listens on, by role. */
export const PeerPorts = z.object({
  chunk: Port.optional(),
  pingback: Port.optional(),
  http: Port.optional(),
  app: Port.optional(),
});
/** The ports a peer listens on, by role. */
export type PeerPorts = z.infer<typeof PeerPorts>;

/** A raw Ed25519 public key in base64url (32 bytes: 43 characters). */
export const PublicKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a base64url Ed25519 key");
/** An Ed25519 signature in base64url (64 bytes: 86 characters). */
export const Signature = z.string().regex(
  /^[A-Za-z0-9_-]{86}$/,
  "must be a base64url Ed25519 signature",
);
/** Unix ms at which a peer signed a message. */
export const SignedAt = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * `POST /peers`: register or heartbeat, as a record signed by the peer it describes
 * (see `tracker_auth.ts`, `registrationBytes()`): `peerId` is the first 40 hex digits of
 * SHA-256(publicKey), `signedAt` grows from one heartbeat to the next. `host` defaults
 * to the caller's address.
 */
export const RegisterPeerRequest = z.object({
  host: Host.optional(),
  port: Port,
  peerId: PeerId,
  name: z.string().max(64).optional(),
  ports: PeerPorts.optional(),
  publicKey: PublicKey,
  version: z.string().max(32).optional(),
  signedAt: SignedAt,
  signature: Signature,
});
/** `POST /peers` request body. */
export type RegisterPeerRequest = z.infer<typeof RegisterPeerRequest>;

/** A live peer as the tracker knows it. Times are ISO 8601. */
export const PeerInfo = z.object({
  peerId: PeerId,
  host: z.string(),
  port: Port,
  name: z.string().optional(),
  ports: PeerPorts.optional(),
  publicKey: z.string().optional(),
  version: z.string().optional(),
  /**
   * The registration exactly as the peer signed it, so anyone can check it with
   * `verifyRegistration()` (`tracker_auth.ts`). One without `host` vouches for no
   * address: the tracker saw the peer at `host` above. Absent from older trackers.
   */
  record: RegisterPeerRequest.optional(),
  registeredAt: z.string(),
  lastSeen: z.string(),
  expiresAt: z.string(),
});
/** A live peer as the tracker knows it. */
export type PeerInfo = z.infer<typeof PeerInfo>;

/** `POST /peers` answer: `created` is false for a heartbeat of a known (host, port). */
export const RegisterPeerResponse = z.object({
  peer: PeerInfo,
  created: z.boolean(),
  ttlSeconds: z.number(),
});
/** `POST /peers` answer. */
export type RegisterPeerResponse = z.infer<typeof RegisterPeerResponse>;

/** Peers a `GET /peers` answer lists when the caller gives no `numwant`. */
export const DEFAULT_NUMWANT = 100;
/** Most peers one `GET /peers` answer lists; a larger `numwant` is taken as this. */
export const MAX_NUMWANT = 200;

/** A non-negative decimal integer in a query string, at most `digits` digits. */
function queryInt(digits: number) {
  return z.string().regex(new RegExp(`^[0-9]{1,${digits}}$`), "must be a non-negative integer")
    .transform(Number);
}

/**
 * `GET /peers?numwant=N&since=VERSION`. `numwant` (default {@linkcode DEFAULT_NUMWANT},
 * at most {@linkcode MAX_NUMWANT}) bounds the peers listed, like a BitTorrent tracker's;
 * `since` is the `version` of the caller's last answer: the tracker then answers only
 * what changed after it (see `PeerList`).
 */
export const PeerListQuery = z.object({
  numwant: queryInt(6).transform((n) => Math.min(n, MAX_NUMWANT)).optional(),
  since: queryInt(16).pipe(z.number().max(Number.MAX_SAFE_INTEGER)).optional(),
});
/** `GET /peers` query, parsed. */
export type PeerListQuery = z.infer<typeof PeerListQuery>;

/**
 * `GET /peers` answer. `version` names the tracker's peer set as answered: the next
 * call passes it as `since`. `kind` says what `peers` is:
 *
 * - `sample`: up to `numwant` live peers picked at random (all of them when there are
 *   no more): what a caller with no `since` gets, or one whose `since` the tracker no
 *   longer covers (it restarted, or too much changed). The caller starts its view anew.
 * - `changes`: the peers registered, moved or changed after `since`, and in `removed`
 *   the ids of those gone since; a heartbeat that changes nothing listed is not a
 *   change. When more changed than `numwant`, `more` is true and `version` is where
 *   the changes given end: the next call continues from there.
 *
 * Older trackers send neither `version` nor `kind`: their `peers` is every live peer.
 * A listed peer's `lastSeen` and `expiresAt` may lag its heartbeats by a few seconds.
 */
export const PeerList = z.object({
  peers: z.array(PeerInfo),
  version: z.number().int().nonnegative().optional(),
  kind: z.enum(["sample", "changes"]).optional(),
  removed: z.array(PeerId).optional(),
  more: z.boolean().optional(),
});
/** `GET /peers` answer. */
export type PeerList = z.infer<typeof PeerList>;

/** The tags of an upload (`?tag=` repeated, or `tags` in JSON): those of `proto/search.ts`. */
export const UploadTags = z.array(Tag).max(MAX_TAGS);

/** `POST /payloads` JSON body form. */
export const UploadJsonRequest = z.object({
  payload: z.string(),
  name: z.string().max(255).optional(),
  tags: UploadTags.optional(),
});

/** `POST /payloads` answer; `chunks` is the number of chunks. */
export const UploadResponse = z.object({
  payloadId: PayloadId,
  size: z.number().int(),
  chunkSize: z.number().int(),
  chunks: z.number().int(),
  created: z.boolean(),
});
/** `POST /payloads` answer. */
export type UploadResponse = z.infer<typeof UploadResponse>;

/** A payload as listed by `GET /payloads`; `stored` says the tracker holds its bytes. */
export const PayloadInfo = z.object({
  payloadId: PayloadId,
  size: z.number().int(),
  chunkSize: z.number().int(),
  chunks: z.number().int(),
  name: z.string().optional(),
  /** Tags given with its uploads (`POST /payloads?tag=`), searched by `GET /search`. */
  tags: z.array(z.string()).optional(),
  createdAt: z.string(),
  stored: z.boolean(),
});
/** A payload as listed by `GET /payloads`. */
export type PayloadInfo = z.infer<typeof PayloadInfo>;

/** `GET /payloads` answer; `cursor` continues the listing, null at the end. */
export const PayloadList = z.object({
  payloads: z.array(PayloadInfo),
  cursor: z.string().nullable(),
});

/** `GET /payloads/{id}`: the manifest, `chunks` being the hex SHA-256 of each chunk. */
export const ManifestResponse = z.object({
  payloadId: PayloadId,
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive(),
  chunks: z.array(Sha256Hex),
  name: z.string().optional(),
  createdAt: z.string().optional(),
  stored: z.boolean().optional(),
});
/** `GET /payloads/{id}` answer. */
export type ManifestResponse = z.infer<typeof ManifestResponse>;

/** `PUT /payloads/{id}`: publish a manifest without its bytes (peers do this on `put`). */
export const PublishManifestRequest = z.object({
  size: z.number().int().positive(),
  chunkSize: z.number().int().positive().max(MAX_CHUNK_SIZE),
  chunks: z.array(Sha256Hex).min(1).max(1_000_000),
  name: z.string().max(255).optional(),
});

/**
 * `POST /payloads/{id}/have`: a peer announces the chunk positions it holds, signed
 * with its identity (`tracker_auth.ts`, `haveBytes()`); only the holder itself can.
 */
export const HaveRequest = z.object({
  peerId: PeerId,
  have: z.string().max(200_000).optional(),
  chunks: z.array(z.number().int().nonnegative()).max(1_000_000).optional(),
  signedAt: SignedAt,
  signature: Signature,
}).refine((r) => (r.have === undefined) !== (r.chunks === undefined), {
  message: "give exactly one of 'have' (base64 bitfield) or 'chunks' (indices)",
});
/** `POST /payloads/{id}/have` body. */
export type HaveRequest = z.infer<typeof HaveRequest>;

/** One holder in `GET /payloads/{id}/peers`: `have` is a base64 bitfield (MSB first). */
export const Holder = z.object({
  peerId: PeerId,
  host: z.string(),
  port: Port,
  ports: PeerPorts.optional(),
  name: z.string().optional(),
  have: z.string(),
  count: z.number().int(),
  ranges: z.string(),
  updatedAt: z.string(),
});
/** One holder of a payload's chunks. */
export type Holder = z.infer<typeof Holder>;

/** `GET /payloads/{id}/peers` answer; `tracker` tells whether the tracker serves every chunk. */
export const HolderList = z.object({
  payloadId: PayloadId,
  chunks: z.number().int(),
  tracker: z.object({ holds: z.boolean() }),
  peers: z.array(Holder),
});
/** `GET /payloads/{id}/peers` answer. */
export type HolderList = z.infer<typeof HolderList>;

/** Every error answer (defined once, in `error_body.ts`). */
export { ErrorBody } from "./error_body.ts";

/** `GET /health` answer. */
export const HealthResponse = z.object({ status: z.literal("ok"), version: z.string() });

/** `DELETE /peers/{peerId}` answer. */
export const RemovedResponse = z.object({ removed: PeerId });

/** `POST /payloads/{id}/have` answer: how many positions the peer now holds. */
export const HaveResponse = z.object({
  payloadId: PayloadId,
  peerId: PeerId,
  count: z.number().int().nonnegative(),
});

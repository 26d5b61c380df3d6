/**
 * The messages of the peer wire protocol: their type codes, and one zod schema per
 * message that is the only definition of its header (a JSON object) and its body
 * (raw bytes). TS types come from `z.infer`. The framing around them is in `frame.ts`.
 *
 * A message is `{ type, requestId, header, body }`, a discriminated union on the
 * string `type`. `requestId` is chosen by the requester and reused by the answer
 * (answers may come out of order). `body` is always a `Uint8Array`; it may be left
 * out when encoding and then means an empty body. Only HAVE (bitfield), CHUNK and
 * PUT_CHUNK (chunk bytes), MANIFEST (chunk hashes) and HTTP_DATA (a tunnel
 * stream's bytes) define one; a body sent with another type is carried but has no
 * meaning.
 *
 * Headers are loose objects: fields a newer peer adds are kept, not rejected, but
 * every field this version reads is validated.
 *
 * @module
 */
import { z } from "zod";
import { ActivityRecord } from "./activity.ts";
import { assertBitfield } from "./bitfield.ts";
import { PublicKey, Signature } from "./discovery.ts";
import { PayloadId, PeerId, Port } from "./ids.ts";
import { chunkCount, MAX_CHUNK_SIZE } from "./manifest.ts";
import { Host } from "./tracker.ts";
import { SearchHeader, SearchReqHeader } from "./search.ts";

/** Largest body a message may carry: 16 MiB (a chunk, a bitfield or a manifest's hashes). */
export const MAX_BODY = MAX_CHUNK_SIZE;
/** Largest header a message may carry: 64 KiB - 1 bytes of UTF-8 JSON (a u16 on the wire). */
export const MAX_HEADER = 64 * 1024 - 1;

/**
 * The u8 type code of every message on the wire. Codes are never reused; 21 to 31 and
 * 35 and up are reserved for later messages, and a peer that receives a code it does
 * not know drops the connection.
 */
export const MessageType = {
  HELLO: 1,
  HAVE_REQ: 2,
  HAVE: 3,
  GET_CHUNK: 4,
  CHUNK: 5,
  PUT_CHUNK: 6,
  PUT_OK: 7,
  MANIFEST_REQ: 8,
  MANIFEST: 9,
  PEERS_REQ: 10,
  PEERS: 11,
  LOG_REQ: 12,
  LOG: 13,
  PING: 14,
  PONG: 15,
  ERROR: 16,
  PAYLOADS_REQ: 17,
  PAYLOADS: 18,
  /** Search the receiver's index (`proto/search.ts`). */
  SEARCH_REQ: 19,
  SEARCH: 20,
  // 32-47: the link handshake (proto/link_auth.ts), before HELLO.
  LINK: 32,
  AUTH_NONCE: 33,
  AUTH_KEY: 34,
  // 48-63: HTTP tunnelled over the link (peer/tunnel_mux.ts), after HELLO.
  HTTP_OPEN: 48,
  HTTP_OPENED: 49,
  HTTP_DATA: 50,
  HTTP_WINDOW: 51,
  HTTP_END: 52,
  HTTP_RESET: 53,
} as const;
/** The name of a message type: `"HELLO"`, `"CHUNK"`, … */
export type MessageTypeName = keyof typeof MessageType;

/** A request id: any u32, chosen by the requester and echoed by the answer. */
export const RequestId = z.number().int().min(0).max(0xffff_ffff);

/** The ports a peer listens on, by role, as sent on the wire: `chunk` is required. */
export const WirePorts = z.looseObject({
  chunk: Port,
  pingback: Port.optional(),
  http: Port.optional(),
  app: Port.optional(),
});
/** The ports a peer listens on, by role. */
export type WirePorts = z.infer<typeof WirePorts>;

/**
 * The proof of identity in a HELLO (`proto/link_auth.ts`): `scheme` `p2p-link-v1`
 * and the Ed25519 `signature` (base64url) of the sender's identity key over the
 * link's transcript (roles, certificate fingerprint, both nonces, peerId, public key).
 */
export const HelloAuth = z.looseObject({
  scheme: z.string().min(1).max(64),
  nonce: z.string().max(1024).optional(),
  signature: z.string().max(1024).optional(),
});

/**
 * HELLO (1): who the sender is. Sent by each side once it has verified the other's
 * AUTH_KEY, with `publicKey` and `auth` (the link handshake of `link_auth.ts`).
 */
export const HelloHeader = z.looseObject({
  peerId: PeerId,
  name: z.string().max(64),
  /** Software version of the sender, for display and diagnostics. */
  version: z.string().min(1).max(64),
  ports: WirePorts,
  /**
   * The address the sender listens on, when it listens on one address only; absent
   * when it listens on all (then the connection's source address is the one to use).
   */
  host: Host.optional(),
  publicKey: z.base64url().max(256).optional(),
  auth: HelloAuth.optional(),
});
/** HELLO header. */
export type HelloHeader = z.infer<typeof HelloHeader>;

/** A header that names just a payload: HAVE_REQ (2) and MANIFEST_REQ (8). */
export const PayloadHeader = z.looseObject({ payloadId: PayloadId });
/** A header that names just a payload. */
export type PayloadHeader = z.infer<typeof PayloadHeader>;

/**
 * An offer to hold a payload, carried by HAVE_REQ (2) from a peer that replicates it.
 * The receiver agrees by answering HAVE (its bitfield: the offerer pushes only the
 * chunks it lacks) after it has fetched and verified the manifest from the offerer
 * with MANIFEST_REQ; it refuses with ERROR: `bad_chunk_size` or `payload_too_large`
 * (the limits of `manifest.ts`), `store_full` (not enough room left), `busy` (too many
 * open agreements). PUT_CHUNK is accepted only for a payload whose offer the receiver
 * accepted from that same peer (else ERROR `not_agreed`).
 */
export const Offer = z.looseObject({
  /** The payload's size in bytes, as its manifest says. */
  size: z.number().int().positive(),
  /** Its chunk size: `CHUNK_SIZE`, or the offer is refused. */
  chunkSize: z.number().int().positive(),
  name: z.string().max(255).optional(),
});
/** An offer to hold a payload. */
export type Offer = z.infer<typeof Offer>;

/** HAVE_REQ (2): which chunks of a payload the receiver holds; with `offer`, also asks it to hold them. */
export const HaveReqHeader = z.looseObject({ payloadId: PayloadId, offer: Offer.optional() });
/** HAVE_REQ header. */
export type HaveReqHeader = z.infer<typeof HaveReqHeader>;

/** HAVE (3): how many chunks the payload has; the body is the sender's bitfield. */
export const HaveHeader = z.looseObject({
  payloadId: PayloadId,
  chunkCount: z.number().int().nonnegative(),
});
/** HAVE header. */
export type HaveHeader = z.infer<typeof HaveHeader>;

/** A header that names one chunk: GET_CHUNK (4), CHUNK (5), PUT_CHUNK (6), PUT_OK (7). */
export const ChunkHeader = z.looseObject({
  payloadId: PayloadId,
  index: z.number().int().nonnegative(),
});
/** A header that names one chunk. */
export type ChunkHeader = z.infer<typeof ChunkHeader>;

/** MANIFEST (9): size and chunk size; the body is the 32-byte SHA-256 of each chunk. */
export const ManifestHeader = z.looseObject({
  payloadId: PayloadId,
  size: z.number().int().nonnegative(),
  chunkSize: z.number().int().positive().max(MAX_BODY),
  /** The name its first holder gave it (a file name), a hint not covered by the id. */
  name: z.string().max(255).optional(),
});
/** MANIFEST header. */
export type ManifestHeader = z.infer<typeof ManifestHeader>;

/** PEERS_REQ (10): ask for known peers, at most `limit` of them. */
export const PeersReqHeader = z.looseObject({
  limit: z.number().int().min(1).max(1000).optional(),
});
/** PEERS_REQ header. */
export type PeersReqHeader = z.infer<typeof PeersReqHeader>;

/**
 * One known peer in a PEERS answer: a signed peer record (`peer_record.ts`), signed
 * by the peer it describes over every field but `lastSeen` (ms since the epoch, the
 * sender's hint). A record without `publicKey`, `seq` and `signature`, or one that
 * does not verify, is dropped by the receiver.
 */
export const WirePeer = z.looseObject({
  peerId: PeerId,
  host: Host,
  ports: WirePorts,
  name: z.string().max(64).optional(),
  lastSeen: z.number().nonnegative().optional(),
  publicKey: PublicKey.optional(),
  /** The signer's clock when it signed, ms: a newer record replaces an older one. */
  seq: z.number().int().nonnegative().optional(),
  signature: Signature.optional(),
});
/** One known peer in a PEERS answer. */
export type WirePeer = z.infer<typeof WirePeer>;

/** PEERS (11): the peers the sender knows, as signed records. */
export const PeersHeader = z.looseObject({ peers: z.array(WirePeer).max(1000) });
/** PEERS header. */
export type PeersHeader = z.infer<typeof PeersHeader>;

/** PAYLOADS_REQ (17): ask which payloads the receiver holds, at most `limit` of them. */
export const PayloadsReqHeader = z.looseObject({
  limit: z.number().int().min(1).max(1000).optional(),
});
/** PAYLOADS_REQ header. */
export type PayloadsReqHeader = z.infer<typeof PayloadsReqHeader>;

/** One payload in a PAYLOADS answer: its size, chunk count, how many are held, its name. */
export const WirePayload = z.looseObject({
  payloadId: PayloadId,
  size: z.number().int().nonnegative(),
  chunks: z.number().int().nonnegative(),
  held: z.number().int().nonnegative(),
  complete: z.boolean(),
  name: z.string().max(255).optional(),
});
/** One payload in a PAYLOADS answer. */
export type WirePayload = z.infer<typeof WirePayload>;

/** PAYLOADS (18): the payloads the sender holds, newest first (over the peer link, not HTTP). */
export const PayloadsHeader = z.looseObject({ payloads: z.array(WirePayload).max(1000) });
/** PAYLOADS header. */
export type PayloadsHeader = z.infer<typeof PayloadsHeader>;

/** LOG_REQ (12): activity records with `id > since`, at most `limit` of them. */
export const LogReqHeader = z.looseObject({
  since: z.number().int().nonnegative().optional(),
  limit: z.number().int().min(1).max(1000).optional(),
  /** Only records of this type (a dotted prefix: `chunk` matches `chunk.sent`). */
  type: z.string().min(1).max(64).optional(),
});
/** LOG_REQ header. */
export type LogReqHeader = z.infer<typeof LogReqHeader>;

/** LOG (13): activity records, in the shape of `activity.ts`. */
export const LogHeader = z.looseObject({ records: z.array(ActivityRecord) });
/** LOG header. */
export type LogHeader = z.infer<typeof LogHeader>;

/** PING (14) and PONG (15): `ts` is the sender's clock, echoed back by PONG. */
export const PingHeader = z.looseObject({ ts: z.number().optional() });
/** PING / PONG header. */
export type PingHeader = z.infer<typeof PingHeader>;

/** ERROR (16): answers a request (same requestId) that could not be served. */
export const ErrorHeader = z.looseObject({
  code: z.string().min(1).max(64),
  message: z.string(),
});
/** ERROR header. */
export type ErrorHeader = z.infer<typeof ErrorHeader>;

/**
 * LINK (32): the accepting side's answer to a dialer's preamble, in the clear:
 * `tls` with its ephemeral certificate (DER) as the body, which the dialer pins, or
 * `plaintext` (empty body) when both ends asked for a loopback link without TLS.
 * `tlsPort`, to a dialer that asked for it: link on that port of this host instead,
 * with Deno's TLS on both ends (`peer/link_tls.ts`).
 */
export const LinkHeader = z.looseObject({
  mode: z.enum(["tls", "plaintext"]),
  tlsPort: z.number().int().min(1).max(65535).optional(),
});
/** LINK header. */
export type LinkHeader = z.infer<typeof LinkHeader>;

/** 32 bytes in base64url (43 characters): a nonce or an HMAC. */
const Bytes32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be 32 bytes in base64url");

/** AUTH_NONCE (33): the sender's fresh 32-byte nonce for this link. */
export const AuthNonceHeader = z.looseObject({ nonce: Bytes32 });
/** AUTH_NONCE header. */
export type AuthNonceHeader = z.infer<typeof AuthNonceHeader>;

/** AUTH_KEY (34): the sender's proof of the network key over both nonces (HMAC-SHA256). */
export const AuthKeyHeader = z.looseObject({ proof: Bytes32 });
/** AUTH_KEY header. */
export type AuthKeyHeader = z.infer<typeof AuthKeyHeader>;

/**
 * Bytes a side may send on one tunnel stream beyond what the other side has read
 * (per direction): 512 KiB. Each side starts with this much credit and gets more
 * with HTTP_WINDOW as the receiver's reader takes the bytes, so a stream whose
 * reader stalls holds at most this much at the receiver.
 */
export const TUNNEL_WINDOW = 512 * 1024;
/**
 * Largest HTTP_DATA body: 256 KiB. Every frame costs its encoding, decoding and
 * write whatever its size, so a busy stream sends large ones; a frame this size
 * still holds the link for well under a millisecond, so chunk frames interleave.
 */
export const MAX_TUNNEL_DATA = 256 * 1024;
/**
 * Tunnel streams one side may have open on one link at once; one more is refused.
 * With `TUNNEL_WINDOW`, at most 16 MiB of one link's tunnels wait for their readers.
 */
export const MAX_TUNNELS_PER_LINK = 32;

/**
 * HTTP_OPEN (48): opens a tunnel stream to the receiver's own main HTTP server; the
 * `requestId` is the stream's id (odd when the link's dialer opens it, even for the
 * acceptor, so both sides may open streams), used by every frame of the stream. The
 * receiver answers HTTP_OPENED, or HTTP_RESET with a code (`too_many_tunnels`,
 * `bad_stream`, `unsupported`). Only a linked (proven) peer can send it.
 */
export const HttpOpenHeader = z.looseObject({});
/** HTTP_OPEN and HTTP_OPENED header. */
export type HttpOpenHeader = z.infer<typeof HttpOpenHeader>;

/** HTTP_WINDOW (51): the sender's reader took `credit` more bytes: the other side may send them. */
export const HttpWindowHeader = z.looseObject({
  credit: z.number().int().min(1).max(TUNNEL_WINDOW),
});
/** HTTP_WINDOW header. */
export type HttpWindowHeader = z.infer<typeof HttpWindowHeader>;

/**
 * HTTP_RESET (53): the stream ends both ways (a refused open, a flow-control breach,
 * a side that closed before reading all): `code` says why (`closed` for a plain close).
 */
export const HttpResetHeader = ErrorHeader;
/** HTTP_RESET header. */
export type HttpResetHeader = z.infer<typeof HttpResetHeader>;

/** A body: raw bytes, empty when left out. */
const Body = z.custom<Uint8Array>((v) => v instanceof Uint8Array, "must be a Uint8Array")
  .default(() => new Uint8Array(0));

function message<T extends MessageTypeName, H extends z.ZodType>(type: T, header: H) {
  return z.object({ type: z.literal(type), requestId: RequestId, header, body: Body });
}

/** HAVE: the body is a bitfield of exactly `chunkCount` positions, spare bits zero. */
const HaveMessage = message("HAVE", HaveHeader).superRefine((m, ctx) => {
  try {
    assertBitfield(m.body, m.header.chunkCount);
  } catch (e) {
    ctx.addIssue({ code: "custom", path: ["body"], message: (e as Error).message });
  }
});

/** MANIFEST: the body holds one 32-byte hash per chunk. */
const ManifestMessage = message("MANIFEST", ManifestHeader).superRefine((m, ctx) => {
  const want = 32 * chunkCount(m.header.size, m.header.chunkSize);
  if (m.body.length !== want) {
    ctx.addIssue({
      code: "custom",
      path: ["body"],
      message: `Manifest body has '${m.body.length}' bytes but needs '${want}' (32 per chunk)`,
    });
  }
});

/** HTTP_DATA (50): 1 to `MAX_TUNNEL_DATA` bytes of the stream; the header is empty. */
const HttpDataMessage = message("HTTP_DATA", HttpOpenHeader).superRefine((m, ctx) => {
  if (m.body.length === 0 || m.body.length > MAX_TUNNEL_DATA) {
    ctx.addIssue({
      code: "custom",
      path: ["body"],
      message: `HTTP_DATA body of '${m.body.length}' bytes is not in 1..${MAX_TUNNEL_DATA}`,
    });
  }
});

/** One schema per message type, keyed by type name: what the decoder validates with. */
export const MessageSchemas = {
  HELLO: message("HELLO", HelloHeader),
  HAVE_REQ: message("HAVE_REQ", HaveReqHeader),
  HAVE: HaveMessage,
  GET_CHUNK: message("GET_CHUNK", ChunkHeader),
  CHUNK: message("CHUNK", ChunkHeader),
  PUT_CHUNK: message("PUT_CHUNK", ChunkHeader),
  PUT_OK: message("PUT_OK", ChunkHeader),
  MANIFEST_REQ: message("MANIFEST_REQ", PayloadHeader),
  MANIFEST: ManifestMessage,
  PEERS_REQ: message("PEERS_REQ", PeersReqHeader),
  PEERS: message("PEERS", PeersHeader),
  LOG_REQ: message("LOG_REQ", LogReqHeader),
  LOG: message("LOG", LogHeader),
  PING: message("PING", PingHeader),
  PONG: message("PONG", PingHeader),
  ERROR: message("ERROR", ErrorHeader),
  PAYLOADS_REQ: message("PAYLOADS_REQ", PayloadsReqHeader),
  PAYLOADS: message("PAYLOADS", PayloadsHeader),
  SEARCH_REQ: message("SEARCH_REQ", SearchReqHeader),
  SEARCH: message("SEARCH", SearchHeader),
  LINK: message("LINK", LinkHeader),
  AUTH_NONCE: message("AUTH_NONCE", AuthNonceHeader),
  AUTH_KEY: message("AUTH_KEY", AuthKeyHeader),
  HTTP_OPEN: message("HTTP_OPEN", HttpOpenHeader),
  HTTP_OPENED: message("HTTP_OPENED", HttpOpenHeader),
  HTTP_DATA: HttpDataMessage,
  HTTP_WINDOW: message("HTTP_WINDOW", HttpWindowHeader),
  HTTP_END: message("HTTP_END", HttpOpenHeader),
  HTTP_RESET: message("HTTP_RESET", HttpResetHeader),
} as const satisfies { [K in MessageTypeName]: z.ZodType };

/** Any wire message: the discriminated union of every `MessageSchemas` entry on `type`. */
export const Message = z.discriminatedUnion("type", [
  MessageSchemas.HELLO,
  MessageSchemas.HAVE_REQ,
  MessageSchemas.HAVE,
  MessageSchemas.GET_CHUNK,
  MessageSchemas.CHUNK,
  MessageSchemas.PUT_CHUNK,
  MessageSchemas.PUT_OK,
  MessageSchemas.MANIFEST_REQ,
  MessageSchemas.MANIFEST,
  MessageSchemas.PEERS_REQ,
  MessageSchemas.PEERS,
  MessageSchemas.LOG_REQ,
  MessageSchemas.LOG,
  MessageSchemas.PING,
  MessageSchemas.PONG,
  MessageSchemas.ERROR,
  MessageSchemas.PAYLOADS_REQ,
  MessageSchemas.PAYLOADS,
  MessageSchemas.SEARCH_REQ,
  MessageSchemas.SEARCH,
  MessageSchemas.LINK,
  MessageSchemas.AUTH_NONCE,
  MessageSchemas.AUTH_KEY,
  MessageSchemas.HTTP_OPEN,
  MessageSchemas.HTTP_OPENED,
  MessageSchemas.HTTP_DATA,
  MessageSchemas.HTTP_WINDOW,
  MessageSchemas.HTTP_END,
  MessageSchemas.HTTP_RESET,
]);
/** A message as decoded: `body` is always present. */
export type Message = z.output<typeof Message>;
/** A message to encode: like `Message`, but `body` may be left out (empty). */
export type MessageInit = z.input<typeof Message>;
/** The message of one type, e.g. `MessageOf<"CHUNK">`. */
export type MessageOf<T extends MessageTypeName> = Extract<Message, { type: T }>;

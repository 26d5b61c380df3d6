/**
 * How a request proves membership of a protected network to the tracker, and how a
 * peer proves with its Ed25519 identity that a change to its own record comes from it.
 *
 * **Membership** (only when the tracker has a network key): every request carries
 *
 * ```text
 * Authorization: P2P-HMAC ts=<unix ms>, nonce=<base64url of 16 random bytes>,
 *                sha256=<hex SHA-256 of the body>, proof=<base64url of 32 bytes>
 * proof = keyProof(key, "p2p tracker request v1",
 *                  [METHOD, path with query, sha256, ts (decimal), nonce])
 * ```
 *
 * (`keyProof()`: HMAC-SHA256 over `transcript()`, see `network_key.ts`.) The body's
 * hash is declared up front so the tracker checks the proof before it reads a byte of
 * the body, then checks the body against the hash as it streams in. A request with no
 * body declares the hash of nothing ({@linkcode EMPTY_SHA256}). The tracker refuses a
 * `ts` more than {@linkcode REQUEST_WINDOW_MS} away from its clock and a nonce it saw
 * within the window.
 *
 * **Identity** (always, with or without a network key): a registration or heartbeat,
 * an unregistration and a chunk announcement are signed by the peer they are about,
 * each over its own label and a `signedAt` time (unix ms). The tracker checks that
 * `peerId` is the key's, that the signature verifies, that `signedAt` is within the
 * window and later than the last one it took for that record, so an old message
 * cannot be played again. The signed fields are listed with each transcript below.
 *
 * Pure computation (WebCrypto), no I/O.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRequestAuth, signRequest, verifyRequestAuth, EMPTY_SHA256 } from "./tracker_auth.ts";
 *
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const header = await signRequest(key, "GET", "/peers", EMPTY_SHA256);
 * const auth = parseRequestAuth(header)!;
 * assert.ok(await verifyRequestAuth(key, "GET", "/peers", auth));
 * assert.ok(!await verifyRequestAuth(key, "GET", "/payloads", auth));
 * ```
 *
 * @module
 */
import { keyProof, type ProofField, transcript, verifyKeyProof } from "./network_key.ts";
import { fromBase64Url, toBase64Url } from "./ids.ts";
import type { PeerPorts } from "./tracker.ts";
import { peerIdFromPublicKey, verifySignature } from "./signature.ts";

/** The `Authorization` scheme of a tracker request's membership proof. */
export const AUTH_SCHEME = "P2P-HMAC";
/** What a request proof is over (the label of its transcript). */
export const REQUEST_LABEL = "p2p tracker request v1";
/** How far a request's `ts` or a signature's `signedAt` may be from the tracker's clock. */
export const REQUEST_WINDOW_MS = 60_000;
/** Hex SHA-256 of no bytes: the body hash of a request without a body. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** The header that carries the identity signature of `DELETE /peers/{peerId}`. */
export const PEER_SIGNATURE_HEADER = "p2p-signature";

/** The parts of an `Authorization: P2P-HMAC …` header. */
export interface RequestAuth {
  /** Unix ms when the request was signed. */
  ts: number;
  /** 16 random bytes, base64url (22 characters). */
  nonce: string;
  /** Hex SHA-256 of the body. */
  sha256: string;
  /** HMAC-SHA256, base64url (43 characters). */
  proof: string;
}

const AUTH_RE = new RegExp(
  `^${AUTH_SCHEME} ts=(\\d{1,15}), nonce=([A-Za-z0-9_-]{22}), ` +
    `sha256=([0-9a-f]{64}), proof=([A-Za-z0-9_-]{43})$`,
);

/** The fields a request proof covers, in order. */
function requestFields(method: string, path: string, a: Omit<RequestAuth, "proof">): ProofField[] {
  return [method.toUpperCase(), path, a.sha256, String(a.ts), a.nonce];
}

/**
 * The `Authorization` header value for a request: `path` is the path with its query
 * exactly as sent, `sha256` the hex SHA-256 of the body ({@linkcode EMPTY_SHA256} for
 * none). `now` and `nonce` are for tests.
 */
export async function signRequest(
  key: Uint8Array,
  method: string,
  path: string,
  sha256: string,
  now: number = Date.now(),
  nonce: string = toBase64Url(crypto.getRandomValues(new Uint8Array(16))),
): Promise<string> {
  const a = { ts: now, nonce, sha256 };
  const proof = await keyProof(key, REQUEST_LABEL, requestFields(method, path, a));
  return `${AUTH_SCHEME} ts=${a.ts}, nonce=${nonce}, sha256=${sha256}, proof=${toBase64Url(proof)}`;
}

/** The parts of an `Authorization` header, or null when it is not a well-formed `P2P-HMAC` one. */
export function parseRequestAuth(header: string | null | undefined): RequestAuth | null {
  const m = header ? AUTH_RE.exec(header.trim()) : null;
  if (!m) return null;
  return { ts: Number(m[1]), nonce: m[2], sha256: m[3], proof: m[4] };
}

/** Whether `auth.proof` is the network key's proof of this method, path, hash, time and nonce. */
export async function verifyRequestAuth(
  key: Uint8Array,
  method: string,
  path: string,
  auth: RequestAuth,
): Promise<boolean> {
  let proof: Uint8Array;
  try {
    proof = fromBase64Url(auth.proof);
  } catch {
    return false;
  }
  return await verifyKeyProof(key, REQUEST_LABEL, requestFields(method, path, auth), proof);
}

// ---- identity signatures ----

/** What a registration signs: every field of `POST /peers` but the signature. */
export interface RegistrationFields {
  peerId: string;
  /** Raw Ed25519 public key, base64url. */
  publicKey: string;
  /** Absent: the tracker takes the caller's address (the signature then vouches for none). */
  host?: string;
  port: number;
  ports?: PeerPorts;
  name?: string;
  version?: string;
  /** Unix ms; must grow from one registration to the next. */
  signedAt: number;
}

/** Label of a signed registration (`POST /peers`; each entry of `GET /peers` carries it). */
export const REGISTRATION_LABEL = "p2p tracker registration v1";
/** Label of a signed unregistration (`DELETE /peers/{peerId}`). */
export const PEER_REMOVE_LABEL = "p2p tracker peer remove v1";
/** Label of a signed chunk announcement (`POST /payloads/{id}/have`). */
export const HAVE_LABEL = "p2p tracker have v1";

/** The ports in a fixed order, an absent one empty: `chunk=5801;pingback=;http=5805;app=`. */
function portsText(ports: PeerPorts | undefined): string {
  const p = ports ?? {};
  return `chunk=${p.chunk ?? ""};pingback=${p.pingback ?? ""};http=${p.http ?? ""};app=${
    p.app ?? ""
  }`;
}

/**
 * The bytes a peer record's signature covers: `transcript(REGISTRATION_LABEL, [peerId,
 * publicKey, host or "", port, ports as "chunk=…;pingback=…;http=…;app=…", name or "",
 * version or "", signedAt])`, numbers in decimal.
 */
export function registrationBytes(r: RegistrationFields): Uint8Array {
  return transcript(REGISTRATION_LABEL, [
    r.peerId,
    r.publicKey,
    r.host ?? "",
    String(r.port),
    portsText(r.ports),
    r.name ?? "",
    r.version ?? "",
    String(r.signedAt),
  ]);
}

/** The bytes an unregistration's signature covers: `[peerId, signedAt]`. */
export function peerRemoveBytes(peerId: string, signedAt: number): Uint8Array {
  return transcript(PEER_REMOVE_LABEL, [peerId, String(signedAt)]);
}

/**
 * The bytes a chunk announcement's signature covers: `[payloadId, peerId, what,
 * signedAt]`, `what` being `have:` and the base64 bitfield as sent, or `chunks:` and
 * the indices joined by commas.
 */
export function haveBytes(
  payloadId: string,
  peerId: string,
  have: { have?: string; chunks?: number[] },
  signedAt: number,
): Uint8Array {
  const what = have.have !== undefined
    ? `have:${have.have}`
    : `chunks:${(have.chunks ?? []).join(",")}`;
  return transcript(HAVE_LABEL, [payloadId, peerId, what, String(signedAt)]);
}

/** The `P2P-Signature` header of a signed `DELETE /peers/{peerId}`. */
export function formatPeerSignature(signedAt: number, signature: Uint8Array): string {
  return `signedAt=${signedAt}, signature=${toBase64Url(signature)}`;
}

/** The parts of a `P2P-Signature` header, or null when it is malformed. */
export function parsePeerSignature(
  header: string | null | undefined,
): { signedAt: number; signature: string } | null {
  const m = header ? /^signedAt=(\d{1,15}), signature=([A-Za-z0-9_-]{86})$/.exec(header) : null;
  return m ? { signedAt: Number(m[1]), signature: m[2] } : null;
}

/**
 * Whether a signed peer record is whole: its `peerId` is its key's, and its signature
 * verifies over `registrationBytes()`. Freshness is the caller's to judge.
 */
export async function verifyRegistration(
  r: RegistrationFields & { signature: string },
): Promise<boolean> {
  let key: Uint8Array;
  let sig: Uint8Array;
  try {
    key = fromBase64Url(r.publicKey);
    sig = fromBase64Url(r.signature);
  } catch {
    return false;
  }
  if (key.byteLength !== 32 || await peerIdFromPublicKey(key) !== r.peerId) return false;
  return await verifySignature(r.publicKey, registrationBytes(r), sig);
}

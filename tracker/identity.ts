/**
 * The checks that make a peer's record and announcements its own: each change is
 * signed with the peer's Ed25519 key (`proto/tracker_auth.ts` lists the signed
 * fields). A signature must verify, its key must be the one the peerId is derived
 * from, its `signedAt` must be within ±60 s of the tracker's clock, and it must not
 * have been taken before (a bounded memory of signatures within the window); the
 * store then requires `signedAt` to be later than the record's last one, so an older
 * message never overwrites a newer one.
 *
 * Signatures are checked with `node:crypto`'s synchronous Ed25519 verify on keys kept
 * imported: every heartbeat carries one, and it costs a third of WebCrypto's
 * `verify()` (50 µs against 130-150 µs here), which was a quarter of the main thread's
 * time under a load of heartbeats.
 *
 * @module
 */
import { createPublicKey, type KeyObject, verify } from "node:crypto";
import { ForbiddenError, P2pError } from "../proto/errors.ts";
import { fromBase64Url } from "../proto/ids.ts";
import { peerIdFromPublicKey } from "../proto/signature.ts";
import { REQUEST_WINDOW_MS } from "../proto/tracker_auth.ts";
import type { ReplayCache } from "./replay_cache.ts";
import { BoundedMap } from "../lib/bounded_map.ts";

/**
 * Public keys kept derived and imported: more than the peers of a large network, whose
 * heartbeats come round one after the other (a smaller memory would miss every time).
 */
const KEYS_KEPT = 16_384;

/** Checks identity signatures against the clock and the replay memory. */
export class IdentityCheck {
  readonly #replay: ReplayCache;
  readonly #clock: () => number;
  /** peerIds of the public keys seen lately. */
  readonly #ids = new BoundedMap<string, string>(KEYS_KEPT);
  /** The public keys seen lately, imported. */
  readonly #keys = new BoundedMap<string, KeyObject>(KEYS_KEPT);

  constructor(replay: ReplayCache, clock: () => number = Date.now) {
    this.#replay = replay;
    this.#clock = clock;
  }

  /** The peerId of a public key (base64url), or "" when it is not a raw Ed25519 key. */
  async #peerIdOf(publicKey: string): Promise<string> {
    let id = this.#ids.get(publicKey);
    if (id === undefined) {
      let raw: Uint8Array;
      try {
        raw = fromBase64Url(publicKey);
      } catch {
        raw = new Uint8Array();
      }
      id = raw.byteLength === 32 ? await peerIdFromPublicKey(raw) : "";
      this.#ids.set(publicKey, id);
    }
    return id;
  }

  /** Whether `signature` (base64url) over `bytes` is `publicKey`'s; never throws. */
  #verify(publicKey: string, bytes: Uint8Array, signature: string): boolean {
    try {
      let key = this.#keys.get(publicKey);
      if (!key) {
        key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
        this.#keys.set(publicKey, key);
      }
      const sig = fromBase64Url(signature);
      return sig.byteLength === 64 && verify(null, bytes, key, sig);
    } catch {
      return false;
    }
  }

  /**
   * Throws `403` unless `signature` (base64url) over `bytes` is `publicKey`'s, the key
   * is `peerId`'s, `signedAt` is fresh and the signature new. `what` names the message.
   */
  async check(
    what: string,
    peerId: string,
    publicKey: string,
    bytes: Uint8Array,
    signedAt: number,
    signature: string,
  ): Promise<void> {
    if (await this.#peerIdOf(publicKey) !== peerId) {
      throw new ForbiddenError(
        "peer_id_mismatch",
        `Cannot take ${what}: peerId '${peerId}' is not derived from the public key given`,
      );
    }
    const now = this.#clock();
    if (Math.abs(signedAt - now) > REQUEST_WINDOW_MS) {
      throw new ForbiddenError(
        "stale_signature",
        `Cannot take ${what}: signedAt '${signedAt}' is more than ${
          REQUEST_WINDOW_MS / 1000
        } s from the tracker's clock (${now})`,
      );
    }
    if (!this.#verify(publicKey, bytes, signature)) {
      throw new ForbiddenError(
        "bad_signature",
        `Cannot take ${what}: the signature is not peer '${peerId}''s`,
      );
    }
    const seen = this.#replay.remember(`s:${signature}`, signedAt + REQUEST_WINDOW_MS + 1);
    if (seen === "seen") {
      throw new ForbiddenError("replayed_signature", `Cannot take ${what}: it was taken already`);
    }
    if (seen === "full") {
      throw new P2pError("busy", "Tracker is at its limit of recent requests; retry soon", {
        status: 503,
      });
    }
  }
}

/** A signed message older than the last one taken for the same record: `409 stale_record`. */
export function staleRecord(what: string, signedAt: number, last: number): P2pError {
  return new P2pError(
    "stale_record",
    `Cannot take ${what}: signedAt '${signedAt}' is not later than the last one taken (${last})`,
    { status: 409 },
  );
}

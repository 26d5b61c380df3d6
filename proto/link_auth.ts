/**
 * The link handshake between two peers, sans-IO: a state machine that takes the
 * other side's handshake messages and says what to send back, and whether the other
 * side is now proven or refused. It runs inside the encrypted channel (or, on a
 * loopback link with `--insecure-plaintext`, over plain TCP), after the accepting
 * side sent its certificate in the clear (`LINK`), and before any other message.
 *
 * ```text
 * each side:  AUTH_NONCE {nonce: 32 fresh bytes}
 *   on theirs: AUTH_KEY   {proof: HMAC(networkKey, "p2p link key v1",
 *                                      [myRole, fingerprint, nonceDialer, nonceAcceptor])}
 *   on theirs, once verified (else ERROR network_key_mismatch):
 *              HELLO      {peerId, publicKey, …, auth: {scheme: "p2p-link-v1",
 *                          signature: Ed25519(identity key, "p2p link id v1",
 *                            [myRole, fingerprint, nonceDialer, nonceAcceptor, peerId, publicKey])}}
 *   on theirs: peerId == first 40 hex of SHA-256(publicKey), signature verifies,
 *              peerId is the one expected (if any) → proven (else ERROR unauthorized)
 * ```
 *
 * `fingerprint` is SHA-256 over the DER of the certificate the dialer pinned (empty
 * on a plaintext link), so a man in the middle that shows the dialer its own
 * certificate makes both proofs and the dialer's signature fail at the acceptor.
 * Each proof names the role of the side that made it, so a side's own messages sent
 * back to it (reflection) never verify; nonces are fresh per link, so messages of
 * an earlier link (replay) never verify. An open network proves `OPEN_NETWORK_KEY`.
 * A side without the key learns the other's proof over nonces (worthless) but never
 * its HELLO, so never its identity.
 *
 * `LinkAuth.receive()` never throws: every failure is a `LinkAuthStep` with `error`
 * (`UnauthorizedError` `network_key_mismatch`, `unauthorized` or `unexpected_peer`,
 * `ProtocolError` `bad_handshake`, or `RemoteError` when the other side sent ERROR)
 * and, where the other side should hear why, an ERROR message to send before closing.
 *
 * @example Two machines talking to each other
 * ```ts
 * import assert from "node:assert/strict";
 * import { LinkAuth } from "./link_auth.ts";
 * import { toBase64Url, toHex } from "./ids.ts";
 *
 * async function side(role: "dialer" | "acceptor") {
 *   const pair = await crypto.subtle.generateKey("Ed25519", true, ["sign"]) as CryptoKeyPair;
 *   const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
 *   const peerId = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", raw))).slice(0, 40);
 *   return new LinkAuth({
 *     role,
 *     fingerprint: new Uint8Array(32),
 *     hello: { peerId, name: role, version: "1", ports: { chunk: 1 }, publicKey: toBase64Url(raw) },
 *     sign: async (d) =>
 *       new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, d as BufferSource)),
 *   });
 * }
 * const [a, b] = [await side("dialer"), await side("acceptor")];
 * let toB = [a.start()], toA = [b.start()];
 * while (!(a.remote && b.remote)) {
 *   const [fromA, fromB] = [toB, toA];
 *   toA = [], toB = [];
 *   for (const m of fromA) toA.push(...(await b.receive({ body: new Uint8Array(), ...m } as never)).send);
 *   for (const m of fromB) toB.push(...(await a.receive({ body: new Uint8Array(), ...m } as never)).send);
 * }
 * assert.equal(a.remote?.name, "acceptor");
 * assert.equal(b.remote?.name, "dialer");
 * ```
 *
 * @module
 */
import { type P2pError, ProtocolError, UnauthorizedError } from "./errors.ts";
import { fromBase64Url, toBase64Url } from "./ids.ts";
import { peerIdFromPublicKey, verifySignature } from "./signature.ts";
import { keyProof, OPEN_NETWORK_KEY, transcript, verifyKeyProof } from "./network_key.ts";
import type { HelloHeader, Message, MessageInit, MessageOf } from "./messages.ts";
import { RemoteError } from "./answers.ts";

/** The label of the network-key proof of a link. */
export const LINK_KEY_LABEL = "p2p link key v1";
/** The label of the identity signature of a link. */
export const LINK_ID_LABEL = "p2p link id v1";
/** The `scheme` of a HELLO's `auth`. */
export const LINK_AUTH_SCHEME = "p2p-link-v1";
/** Bytes of a link nonce. */
export const NONCE_BYTES = 32;

/** Which end of the TCP connection a side is: the one that connected, or the one that accepted. */
export type LinkRole = "dialer" | "acceptor";

/** Options of a `LinkAuth`. */
export interface LinkAuthOptions {
  /** Our end of the connection. */
  role: LinkRole;
  /** The network key; undefined: an open network (`OPEN_NETWORK_KEY`). */
  networkKey?: Uint8Array;
  /** SHA-256 of the DER of the certificate the dialer pinned; empty on a plaintext link. */
  fingerprint: Uint8Array;
  /** Our HELLO (with `peerId` and `publicKey`); its `auth` is filled in here. */
  hello: HelloHeader;
  /** Signs with our identity key (Ed25519). */
  sign: (data: Uint8Array) => Promise<Uint8Array>;
  /** Refuse any other proven peerId (we dialed a known peer). */
  expectPeerId?: string;
  /** Our nonce (default: 32 fresh random bytes); for tests. */
  nonce?: Uint8Array;
}

/** What one received message led to. */
export interface LinkAuthStep {
  /** Messages to send, in order (without `requestId`: it is 0 for handshake messages). */
  send: MessageInit[];
  /** The other side's HELLO, once it is proven. */
  remote?: HelloHeader;
  /** Why the handshake failed; after sending `send`, close the connection. */
  error?: P2pError;
}

type State = "nonce" | "key" | "hello" | "done" | "failed";
const EXPECTED = { nonce: "AUTH_NONCE", key: "AUTH_KEY", hello: "HELLO" } as const;

/**
 * One side of one link's handshake. `start()` gives the first message (our nonce);
 * each message of the other side goes to `receive()`, one at a time, in order of
 * arrival (await each before the next). Once `remote` is set the other side is
 * proven and the connection carries on without the machine.
 */
export class LinkAuth {
  readonly #opts: LinkAuthOptions;
  readonly #key: Uint8Array;
  readonly #nonce: Uint8Array;
  #theirNonce: Uint8Array | undefined;
  #state: State = "nonce";
  #error: P2pError | undefined;
  #remote: HelloHeader | undefined;

  /** A machine for one link; throws `TypeError` when our HELLO has no public key. */
  constructor(opts: LinkAuthOptions) {
    if (!opts.hello.publicKey) {
      throw new TypeError("Cannot start link handshake: our HELLO has no publicKey");
    }
    if (opts.nonce && opts.nonce.byteLength !== NONCE_BYTES) {
      throw new RangeError(`Cannot start link handshake: a nonce has ${NONCE_BYTES} bytes`);
    }
    this.#opts = opts;
    this.#key = opts.networkKey ?? OPEN_NETWORK_KEY;
    this.#nonce = opts.nonce ?? crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  }

  /** The other side's HELLO once proven, else undefined. */
  get remote(): HelloHeader | undefined {
    return this.#remote;
  }

  /** Why the handshake failed, once it has. */
  get error(): P2pError | undefined {
    return this.#error;
  }

  /** Our first message: AUTH_NONCE. */
  start(): MessageInit {
    return { type: "AUTH_NONCE", requestId: 0, header: { nonce: toBase64Url(this.#nonce) } };
  }

  /** Takes the other side's next message; never throws. */
  async receive(msg: Message): Promise<LinkAuthStep> {
    try {
      return await this.#receive(msg);
    } catch (err) {
      // Only a bug or a failing `sign` can land here: refuse rather than throw.
      return this.#fail(
        new ProtocolError("bad_handshake", `Link handshake failed: ${String(err)}`, { cause: err }),
        true,
      );
    }
  }

  async #receive(msg: Message): Promise<LinkAuthStep> {
    if (this.#state === "failed") return { send: [], error: this.#error };
    if (this.#state === "done") {
      return this.#fail(
        new ProtocolError("bad_handshake", `Unexpected '${msg.type}' after the link handshake`),
        true,
      );
    }
    if (msg.type === "ERROR") {
      const { code, message } = msg.header;
      return this.#fail(new RemoteError(code, message), false);
    }
    const expected = EXPECTED[this.#state];
    if (msg.type !== expected) {
      return this.#fail(
        new ProtocolError(
          "bad_handshake",
          `Expected '${expected}' in the link handshake, got '${msg.type}'`,
        ),
        true,
      );
    }
    if (msg.type === "AUTH_NONCE") {
      const nonce = fromBase64Url(msg.header.nonce);
      if (nonce.byteLength !== NONCE_BYTES || equalBytes(nonce, this.#nonce)) {
        return this.#fail(
          new ProtocolError("bad_handshake", "Peer sent a bad nonce (or ours back)"),
          true,
        );
      }
      this.#theirNonce = nonce;
      this.#state = "key";
      const proof = await keyProof(this.#key, LINK_KEY_LABEL, this.#fields(this.#opts.role));
      return { send: [{ type: "AUTH_KEY", requestId: 0, header: { proof: toBase64Url(proof) } }] };
    }
    if (msg.type === "AUTH_KEY") {
      const proof = fromBase64Url(msg.header.proof);
      const ok = await verifyKeyProof(this.#key, LINK_KEY_LABEL, this.#fields(this.#other), proof);
      if (!ok) {
        return this.#fail(
          new UnauthorizedError(
            "network_key_mismatch",
            "Peer is not in this network (network key differs)",
          ),
          true,
        );
      }
      this.#state = "hello";
      const hello = this.#opts.hello;
      const signed = this.#idTranscript(this.#opts.role, hello.peerId, hello.publicKey!);
      const signature = toBase64Url(await this.#opts.sign(signed));
      return {
        send: [{
          type: "HELLO",
          requestId: 0,
          header: { ...hello, auth: { scheme: LINK_AUTH_SCHEME, signature } },
        }],
      };
    }
    return await this.#checkHello((msg as MessageOf<"HELLO">).header);
  }

  async #checkHello(hello: HelloHeader): Promise<LinkAuthStep> {
    const refuse = (message: string) =>
      this.#fail(new UnauthorizedError("unauthorized", message), true);
    const { peerId, publicKey, auth } = hello;
    if (!publicKey || auth?.scheme !== LINK_AUTH_SCHEME || !auth.signature) {
      return refuse(`Peer '${peerId}' sent no proof of identity`);
    }
    let raw: Uint8Array;
    let signature: Uint8Array;
    try {
      raw = fromBase64Url(publicKey);
      signature = fromBase64Url(auth.signature);
    } catch {
      return refuse(`Peer '${peerId}' sent a public key or signature that is not base64url`);
    }
    if (await peerIdFromPublicKey(raw) !== peerId) {
      return refuse(`Peer claims id '${peerId}', which is not the hash of its public key`);
    }
    const signed = this.#idTranscript(this.#other, peerId, publicKey);
    if (!await verifySignature(publicKey, signed, signature)) {
      return refuse(`Peer '${peerId}' did not prove its identity (bad signature)`);
    }
    const expect = this.#opts.expectPeerId;
    if (expect !== undefined && expect !== peerId) {
      return this.#fail(
        new UnauthorizedError(
          "unexpected_peer",
          `Expected peer '${expect}' at this address, found '${peerId}'`,
        ),
        true,
      );
    }
    this.#state = "done";
    this.#remote = hello;
    return { send: [], remote: hello };
  }

  get #other(): LinkRole {
    return this.#opts.role === "dialer" ? "acceptor" : "dialer";
  }

  /** Role, fingerprint, the dialer's nonce, the acceptor's nonce. */
  #fields(role: LinkRole): (string | Uint8Array)[] {
    const ours = this.#nonce;
    const theirs = this.#theirNonce!;
    const [dialer, acceptor] = this.#opts.role === "dialer" ? [ours, theirs] : [theirs, ours];
    return [role, this.#opts.fingerprint, dialer, acceptor];
  }

  #idTranscript(role: LinkRole, peerId: string, publicKey: string): Uint8Array {
    return transcript(LINK_ID_LABEL, [...this.#fields(role), peerId, fromBase64Url(publicKey)]);
  }

  #fail(error: P2pError, tell: boolean): LinkAuthStep {
    this.#state = "failed";
    this.#error = error;
    const send: MessageInit[] = tell
      ? [{
        type: "ERROR",
        requestId: 0,
        header: { code: error.code, message: error.message.slice(0, 256) },
      }]
      : [];
    return { send, error };
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

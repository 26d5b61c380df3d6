/**
 * Test identities for links: a fresh Ed25519 key pair, its peerId, a HELLO that
 * carries its public key, and what `LinkOptions` / `link` options need to sign.
 *
 * @module
 */
import { toBase64Url } from "../proto/ids.ts";
import type { HelloHeader } from "../proto/messages.ts";
import { peerIdFromPublicKey } from "../proto/signature.ts";

/** A test peer's identity. */
export interface TestIdentity {
  peerId: string;
  publicKey: string;
  sign: (data: Uint8Array) => Promise<Uint8Array>;
  /** A HELLO with this identity, named `name`, chunk port 5801. */
  hello: HelloHeader;
}

/** A new identity named `name`. */
export async function testIdentity(name: string): Promise<TestIdentity> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, ["sign"]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const peerId = await peerIdFromPublicKey(raw);
  const publicKey = toBase64Url(raw);
  return {
    peerId,
    publicKey,
    sign: async (data) =>
      new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, data as BufferSource)),
    hello: { peerId, name, version: "0.1.0", ports: { chunk: 5801 }, publicKey },
  };
}

/**
 * Test identities by name, made up front so tests can ask for them synchronously:
 * the first use of a name takes the next identity of the book.
 */
export class IdentityBook {
  readonly #free: TestIdentity[];
  readonly #byName = new Map<string, TestIdentity>();

  private constructor(free: TestIdentity[]) {
    this.#free = free;
  }

  /** A book of `size` identities. */
  static async create(size = 40): Promise<IdentityBook> {
    return new IdentityBook(
      await Promise.all(Array.from({ length: size }, (_, i) => testIdentity(`id${i}`))),
    );
  }

  /** The identity called `name`. */
  get(name: string): TestIdentity {
    let id = this.#byName.get(name);
    if (!id) {
      id = this.#free.pop();
      if (!id) throw new RangeError(`IdentityBook: no identity left for '${name}'`);
      this.#byName.set(name, id);
    }
    return id;
  }

  /** The HELLO of `name` (with its public key) and the given ports. */
  hello(name: string, ports: HelloHeader["ports"] = { chunk: 5801 }): HelloHeader {
    return { ...this.get(name).hello, name, ports };
  }

  /** `connectPeer()` options of `name`: its HELLO and its link signer. */
  dial(name: string, ports?: HelloHeader["ports"]) {
    return { hello: this.hello(name, ports), link: { sign: this.get(name).sign } };
  }
}

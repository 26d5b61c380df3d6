/**
 * A peer's identity: an Ed25519 key pair made with WebCrypto on first start and kept
 * in `identity.json` in the data directory. The peerId is the first 40 hex digits of
 * SHA-256 over the raw 32-byte public key, so it stays the same across restarts and
 * anyone holding the public key can check it. The checks others make
 * (`peerIdFromPublicKey()`, `verifySignature()`) live in `proto/signature.ts` and are
 * re-exported here.
 *
 * @module
 */
import { z } from "zod";
import { errorMessage, P2pError } from "../proto/errors.ts";
import { fromBase64Url, toBase64Url } from "../proto/ids.ts";
import { peerIdFromPublicKey } from "../proto/signature.ts";

export { peerIdFromPublicKey, verifySignature } from "../proto/signature.ts";

/** This peer's identity. */
export interface Identity {
  /** 40 lowercase hex digits, derived from the public key. */
  peerId: string;
  /** The raw Ed25519 public key, base64url. */
  publicKey: string;
  /** Signs bytes with the private key (64-byte Ed25519 signature). */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** `identity.json`: the raw public key (base64url) and the private key as a JWK. */
const IdentityFile = z.object({
  version: z.literal(1),
  publicKey: z.string(),
  privateKey: z.looseObject({ kty: z.string(), crv: z.string(), x: z.string(), d: z.string() }),
});

/** An identity file exists but cannot be used; it is never replaced silently. */
export class IdentityError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("identity_unreadable", message, options);
  }
}

/**
 * Loads the identity kept in `dir/identity.json`, or makes and saves a new one when
 * there is none. A file that exists but cannot be read is an error, never silently
 * replaced: losing a key changes the peerId.
 */
export async function loadIdentity(dir: string): Promise<Identity> {
  const path = `${dir}/identity.json`;
  let text: string | undefined;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (text === undefined) return await createIdentity(dir, path);
  try {
    const file = IdentityFile.parse(JSON.parse(text));
    const privateKey = await crypto.subtle.importKey(
      "jwk",
      file.privateKey,
      { name: "Ed25519" },
      false,
      ["sign"],
    );
    const peerId = await peerIdFromPublicKey(fromBase64Url(file.publicKey));
    return identity(peerId, file.publicKey, privateKey);
  } catch (cause) {
    throw new IdentityError(
      `Cannot read identity '${path}': ${
        errorMessage(cause)
      }; move the file away to make a new identity`,
      { cause },
    );
  }
}

async function createIdentity(dir: string, path: string): Promise<Identity> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  if (!("privateKey" in pair)) throw new TypeError("Ed25519 key generation gave no key pair");
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const file = {
    version: 1,
    publicKey: toBase64Url(raw),
    privateKey: await crypto.subtle.exportKey("jwk", pair.privateKey),
  };
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(file, null, 2) + "\n", { mode: 0o600 });
  await Deno.rename(tmp, path);
  return identity(await peerIdFromPublicKey(raw), file.publicKey, pair.privateKey);
}

function identity(peerId: string, publicKey: string, privateKey: CryptoKey): Identity {
  return {
    peerId,
    publicKey,
    sign: async (data) =>
      new Uint8Array(await crypto.subtle.sign("Ed25519", privateKey, data as BufferSource)),
  };
}

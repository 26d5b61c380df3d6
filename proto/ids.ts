/**
 * Identifiers and their formats: payloadIds (64 lowercase hex, a SHA-256) and
 * peerIds (40 lowercase hex), plus hex and base64 helpers. Pure functions only.
 *
 * @module
 */
import { z } from "zod";

/** 64 lowercase hex digits: how every SHA-256 (chunk hashes, payloadIds) is written. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A SHA-256 in lowercase hex. */
export const Sha256Hex = z.string().regex(SHA256_HEX, "must be 64 lowercase hex digits");
/** A payloadId: the hex SHA-256 of the payload's manifest (see `manifest.ts`). */
export const PayloadId = Sha256Hex;
/** A peerId: 40 lowercase hex digits (derived from a peer's public key, or random). */
export const PeerId = z.string().regex(/^[0-9a-f]{40}$/, "must be 40 lowercase hex digits");
/** A TCP/UDP port number that can be listened on (1..65535). */
export const Port = z.number().int().min(1).max(65535);

/** Lowercase hex of the given bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Bytes of a hex string; throws `TypeError` for odd length or non-hex digits. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError(`Cannot decode hex: '${hex.slice(0, 16)}' is not hex`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Standard base64 (with padding) of the given bytes. */
export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Bytes of a standard base64 string; throws `TypeError` when it is not base64. */
export function fromBase64(text: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(text);
  } catch (cause) {
    throw new TypeError(`Cannot decode base64: '${text.slice(0, 16)}' is not base64`, { cause });
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A fresh random peerId, for clients that register without an identity of their own. */
export function randomPeerId(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(20)));
}

/** URL-safe base64 without padding (RFC 4648 §5), as used for public keys and signatures. */
export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of URL-safe base64 (padding optional); throws `TypeError` when it is not. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new TypeError(`Cannot decode base64url: '${text.slice(0, 16)}' is not base64url`);
  }
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(std + "=".repeat((4 - (std.length % 4)) % 4));
}

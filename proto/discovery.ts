/**
 * LAN discovery formats: the pingback answer (the JSON a peer serves on its pingback
 * port, default 5800), the bytes its signature covers, address ranges to scan, and
 * the control API's discovery request and report. Pure: no I/O, no clock.
 *
 * A caller sends `GET /?nonce=N` to a device's pingback port. A peer answers with
 * `PingbackAnswer`, its `signature` made with its Ed25519 key over
 * `pingbackSignedBytes(N, peerId, ports)`; the caller checks that the public key
 * hashes to the peerId and that the signature verifies, so an answer cannot be
 * replayed (fresh nonce) nor claim someone else's peerId.
 *
 * **With a network key.** A peer of a protected network tells who it is only to a
 * caller that proves the key: the request carries
 * `proof = keyProof(key, "p2p pingback v1", [N])` (base64url) beside the nonce. Without
 * it, or with a wrong one, the answer is only `{ "p2p": "protected" }`
 * (`ProtectedAnswer`). With it, the answer is the usual one plus
 * `keyProof = keyProof(key, "p2p pingback answer v1", [N, peerId, publicKey])`, which
 * the caller checks, so a stranger cannot pass for a member either. A peer of an open
 * network ignores `proof` and answers as always, without `keyProof`; a keyed caller
 * then knows it is not a member of its network.
 *
 * @module
 */
import { z } from "zod";
import { PeerId, Port } from "./ids.ts";

/** The service name every pingback answer carries. */
export const PINGBACK_SERVICE = "p2p";
/** Default pingback port. */
export const DEFAULT_PINGBACK_PORT = 5800;
/** Most addresses one scan may cover (a /20). */
export const MAX_RANGE_ADDRESSES = 4096;
/** Largest pingback answer a caller reads, in bytes. */
export const MAX_PINGBACK_BYTES = 16 * 1024;

/** A nonce chosen by the caller: 16 to 128 base64url characters. */
export const Nonce = z.string().regex(
  /^[A-Za-z0-9_-]{16,128}$/,
  "must be 16 to 128 base64url characters",
);

/** A raw Ed25519 public key (32 bytes) in base64url: 43 characters. */
export const PublicKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a base64url Ed25519 key");

/** An Ed25519 signature (64 bytes) in base64url: 86 characters. */
export const Signature = z.string().regex(
  /^[A-Za-z0-9_-]{86}$/,
  "must be a base64url Ed25519 signature",
);

/** The label of a caller's key proof in a pingback request. */
export const PINGBACK_PROOF_LABEL = "p2p pingback v1";
/** The label of a keyed peer's key proof in its pingback answer. */
export const PINGBACK_ANSWER_LABEL = "p2p pingback answer v1";

/** A key proof (HMAC-SHA256, 32 bytes) in base64url: 43 characters. */
export const KeyProofText = z.string().regex(
  /^[A-Za-z0-9_-]{43}$/,
  "must be a base64url key proof",
);

/** What a peer of a protected network answers a caller that did not prove the key. */
export const ProtectedAnswer = z.object({ p2p: z.literal("protected") });
/** What a peer of a protected network answers a caller that did not prove the key. */
export type ProtectedAnswer = z.infer<typeof ProtectedAnswer>;

/** The ports a peer announces on its pingback port: `pingback` and `chunk` are required. */
export const PingbackPorts = z.object({
  pingback: Port,
  chunk: Port,
  http: Port.optional(),
  app: Port.optional(),
});
/** The ports a peer announces on its pingback port. */
export type PingbackPorts = z.infer<typeof PingbackPorts>;

/** `GET /` on a pingback port. `nonce` and `signature` are there when a nonce was sent. */
export const PingbackAnswer = z.looseObject({
  service: z.literal(PINGBACK_SERVICE),
  /** Wire protocol version of the TCP chunk service. */
  protocol: z.number().int().min(1).max(0xffff),
  /** Program version. */
  version: z.string().max(32),
  peerId: PeerId,
  name: z.string().max(64),
  publicKey: PublicKey,
  ports: PingbackPorts,
  nonce: Nonce.optional(),
  signature: Signature.optional(),
  /** A keyed peer's proof of the network key over the nonce, its peerId and its public key. */
  keyProof: KeyProofText.optional(),
});
/** A pingback answer. */
export type PingbackAnswer = z.infer<typeof PingbackAnswer>;

/**
 * The bytes a pingback signature covers: a domain tag, the nonce, the peerId and the
 * ports in a fixed order (0 for a port not served), one per line.
 */
export function pingbackSignedBytes(
  nonce: string,
  peerId: string,
  ports: PingbackPorts,
): Uint8Array {
  const p = [ports.pingback, ports.chunk, ports.http ?? 0, ports.app ?? 0].join(",");
  return new TextEncoder().encode(`p2p-pingback-v1\n${nonce}\n${peerId}\n${p}`);
}

/** An inclusive range of IPv4 addresses, as 32-bit unsigned numbers. */
export interface Ipv4Range {
  first: number;
  last: number;
}

/** The 32-bit number of a dotted IPv4 address; throws `TypeError` when it is not one. */
export function ipv4ToNumber(text: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) throw new TypeError(`Invalid IPv4 address '${text}'`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255 || (m[i].length > 1 && m[i][0] === "0")) {
      throw new TypeError(`Invalid IPv4 address '${text}'`);
    }
    n = n * 256 + octet;
  }
  return n;
}

/** The dotted form of a 32-bit IPv4 number. */
export function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/**
 * Parses a scan range: a CIDR block (`10.0.0.0/24`: its host addresses, without the
 * network and broadcast addresses when the prefix is /30 or shorter), a range of two
 * addresses (`10.0.0.5-10.0.0.20`), a short range (`10.0.0.5-20`) or one address.
 * Throws `RangeError` for an empty or reversed range or one over
 * `MAX_RANGE_ADDRESSES` addresses, `TypeError` for text that is none of these.
 */
export function parseRange(text: string): Ipv4Range {
  const t = text.trim();
  let first: number;
  let last: number;
  const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(t);
  const dash = /^([\d.]+)-([\d.]+)$/.exec(t);
  if (cidr) {
    const bits = Number(cidr[2]);
    if (bits > 32) throw new TypeError(`Invalid range '${text}': prefix /${bits} is over /32`);
    const size = 2 ** (32 - bits);
    if (size > MAX_RANGE_ADDRESSES * 2) throw tooLarge(text, size);
    const base = ipv4ToNumber(cidr[1]);
    first = base - (base % size);
    last = first + size - 1;
    if (bits <= 30) {
      first++;
      last--;
    }
  } else if (dash) {
    first = ipv4ToNumber(dash[1]);
    last = /^\d{1,3}$/.test(dash[2])
      ? ipv4ToNumber(`${dash[1].split(".").slice(0, 3).join(".")}.${dash[2]}`)
      : ipv4ToNumber(dash[2]);
    if (last < first) {
      throw new RangeError(`Invalid range '${text}': the end comes before the start`);
    }
  } else if (/^[\d.]+$/.test(t)) {
    first = last = ipv4ToNumber(t);
  } else {
    throw new TypeError(
      `Invalid range '${text}': expected CIDR (10.0.0.0/24), FIRST-LAST or one IPv4 address`,
    );
  }
  if (last - first + 1 > MAX_RANGE_ADDRESSES) throw tooLarge(text, last - first + 1);
  return { first, last };
}

function tooLarge(text: string, size: number): RangeError {
  return new RangeError(
    `Range '${text}' has ${size} addresses; at most ${MAX_RANGE_ADDRESSES} may be scanned at once`,
  );
}

/** The range in `FIRST-LAST` form (what npm:local-devices takes). */
export function formatRange(r: Ipv4Range): string {
  return `${numberToIpv4(r.first)}-${numberToIpv4(r.last)}`;
}

/** Whether an address falls in a range. */
export function inRange(r: Ipv4Range, ip: string): boolean {
  try {
    const n = ipv4ToNumber(ip);
    return n >= r.first && n <= r.last;
  } catch {
    return false;
  }
}

/** One network interface, as `Deno.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  family: string;
  address: string;
  cidr: string;
  name?: string;
}

/**
 * The ranges to scan when none is given: the IPv4 subnet of each interface that is not
 * loopback or link-local. A subnet larger than a /24 is narrowed to the /24 holding the
 * interface's own address, so a scan never sweeps a huge network by accident.
 */
export function interfaceRanges(interfaces: InterfaceAddress[]): Ipv4Range[] {
  const out: Ipv4Range[] = [];
  for (const i of interfaces) {
    if (i.family !== "IPv4" || i.address.startsWith("127.") || i.address.startsWith("169.254.")) {
      continue;
    }
    const bits = Number(i.cidr.split("/")[1]);
    if (!Number.isInteger(bits) || bits >= 31) continue;
    const r = parseRange(`${i.address}/${Math.max(bits, 24)}`);
    if (!out.some((o) => o.first === r.first && o.last === r.last)) out.push(r);
  }
  return out;
}

/** `POST /_p2p/discover` body: the range to scan (none: the interfaces' subnets). */
export const DiscoverRequest = z.object({
  range: z.string().max(64).optional(),
});
/** A discovery request. */
export type DiscoverRequest = z.infer<typeof DiscoverRequest>;

/** `POST /_p2p/discover` query: `progress=1` streams NDJSON (`DiscoverProgress`, then `DiscoverDone`). */
export const DiscoverQuery = z.object({
  progress: z.enum(["0", "1"], "must be 0 or 1").optional().transform((v) => v === "1"),
});

/** A peer identified by a scan. */
export const DiscoveredPeer = z.object({
  peerId: PeerId,
  name: z.string(),
  host: z.string(),
  ports: PingbackPorts,
  rttMs: z.number(),
  /** `new`: not known before; `moved`: known at another address; `known`: unchanged. */
  change: z.enum(["new", "moved", "known"]),
});
/** A peer identified by a scan. */
export type DiscoveredPeer = z.infer<typeof DiscoveredPeer>;

/** What one discovery run did. */
export const DiscoveryReport = z.object({
  ranges: z.array(z.string()),
  /** Devices npm:local-devices reported in the ranges. */
  devices: z.number(),
  /** Addresses probed: the devices plus the peers already known. */
  probed: z.number(),
  found: z.array(DiscoveredPeer),
  /** Devices that answered, or did not, but are not (verified) peers. */
  rejected: z.array(z.object({ address: z.string(), reason: z.string() })),
  /** Known peers that did not answer their pingback port: now marked stale. */
  stale: z.array(z.object({ peerId: PeerId, address: z.string(), reason: z.string() })),
  /** When the device listing failed: why (the known peers were still probed). */
  devicesError: z.string().optional(),
  seconds: z.number(),
});
/** What one discovery run did. */
export type DiscoveryReport = z.infer<typeof DiscoveryReport>;

/**
 * How far a discovery run is (`POST /_p2p/discover?progress=1` streams these as NDJSON
 * before its `done` line): `devices` once the devices are listed, then `probing`
 * after each answer or timeout. `total` counts the devices and the known peers.
 */
export const DiscoverProgress = z.object({
  type: z.literal("progress"),
  phase: z.enum(["devices", "probing"]),
  devices: z.number().int().nonnegative(),
  probed: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  found: z.number().int().nonnegative(),
});
/** How far a discovery run is. */
export type DiscoverProgress = z.infer<typeof DiscoverProgress>;
/** The counts of a `DiscoverProgress`, as a scan tells them. */
export type ScanProgress = Omit<DiscoverProgress, "type">;

/** The last line of a streamed discovery: its report. */
export const DiscoverDone = z.object({ type: z.literal("done"), report: DiscoveryReport });
/** The last line of a streamed discovery. */
export type DiscoverDone = z.infer<typeof DiscoverDone>;

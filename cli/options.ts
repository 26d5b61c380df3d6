/**
 * Parsers of command-line values (ports, sizes, durations, URLs, paths) and the
 * default locations of data files. Each parser throws commander's
 * `InvalidArgumentError` with a message that names what was wrong.
 *
 * @module
 */
import { InvalidArgumentError } from "@commander-js/extra-typings";
import ipaddr from "ipaddr.js";
import { parseRange } from "../proto/discovery.ts";
import { errorMessage } from "../proto/errors.ts";
import { isIPv6 } from "../lib/net_addr.ts";

/** A port number 0..65535 (0 lets the system choose). */
export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) {
    throw new InvalidArgumentError(`port must be an integer from 0 to 65535`);
  }
  return n;
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** A byte size such as `1048576`, `64MiB`, `10M` or `1.5GB`; must be positive. */
export function parseBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InvalidArgumentError(`size must be a number of bytes, like 1048576 or 64MiB`);
  }
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0 || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`size must be positive`);
  return n;
}

/** A positive number of seconds, fractions allowed. */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0) {
    throw new InvalidArgumentError(`must be a positive number of seconds`);
  }
  return n;
}

/** A host name or address to listen on or connect to. */
export function parseHost(value: string): string {
  if (!/^[0-9A-Za-z.:_%[\]-]+$/.test(value) || value.length > 253) {
    throw new InvalidArgumentError(`must be a host name or an IP address`);
  }
  return value.replace(/^\[(.*)\]$/, "$1");
}

/** An http(s) URL, without a trailing slash. */
export function parseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`must be a URL like http://127.0.0.1:5700`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`must be an http:// or https:// URL`);
  }
  return url.href.replace(/\/$/, "");
}

/** Where p2p keeps its files unless told otherwise. */
export function defaultDataDir(): string {
  const env = (name: string) => Deno.env.get(name) || undefined;
  const explicit = env("P2P_HOME");
  if (explicit) return explicit;
  if (Deno.build.os === "windows") {
    return `${env("LOCALAPPDATA") ?? env("USERPROFILE") ?? "."}\\p2p`;
  }
  const xdg = env("XDG_DATA_HOME");
  if (xdg) return `${xdg}/p2p`;
  const home = env("HOME");
  return home ? `${home}/.local/share/p2p` : ".p2p";
}

/** The directory part of a path (`.` when there is none). */
export function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i > 0 ? path.slice(0, i) : i === 0 ? path.slice(0, 1) : ".";
}

/** A peer's address as given on the command line. */
export interface PeerAddress {
  host: string;
  port: number;
}

/** A peer address `HOST:PORT`, `[IPv6]:PORT`, `HOST` or a bare IPv6 address (port 5801). */
export function parsePeerAddress(value: string): PeerAddress {
  if (isIPv6(value.trim())) return { host: value.trim(), port: 5801 };
  const m = /^(?:\[([^\]]+)\]|([^:\s]+))(?::(\d+))?$/.exec(value.trim());
  const port = m?.[3] === undefined ? 5801 : Number(m[3]);
  if (!m || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`must be HOST:PORT, like 127.0.0.2:5801`);
  }
  return { host: parseHost(m[1] ?? m[2]), port };
}

/** A whole number within bounds. */
export function parseCount(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** A LAN range to scan: CIDR, FIRST-LAST or one IPv4 address (at most 4096 addresses). */
export function parseScanRange(value: string): string {
  try {
    parseRange(value);
  } catch (err) {
    throw new InvalidArgumentError(errorMessage(err));
  }
  return value.trim();
}

/** Addresses a LAN tool must reach directly: loopback, private and link-local ranges. */
export const LAN_NO_PROXY = [
  "localhost",
  "127.0.0.0/8",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "169.254.0.0/16",
  "::1",
  "fc00::/7",
  "fe80::/10",
];

/**
 * When an HTTP proxy is set in the environment (which `fetch` honours), adds the LAN
 * ranges to `NO_PROXY`, so that peers, the tracker and the local peer are reached
 * directly, never through the proxy. Returns the `NO_PROXY` value set, if any.
 */
export function keepLanOffProxies(
  env: Pick<typeof Deno.env, "get" | "set"> = Deno.env,
): string | undefined {
  const proxied = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
  ]
    .some((k) => env.get(k));
  if (!proxied) return undefined;
  const current = (env.get("NO_PROXY") ?? env.get("no_proxy") ?? "").split(",").map((s) => s.trim())
    .filter(Boolean);
  // One entry per range however it is spelled (`FE80::/10` is `fe80::/10`); the first spelling stays.
  const byRange = new Map<string, string>();
  for (const entry of [...current, ...LAN_NO_PROXY]) {
    if (!byRange.has(rangeKey(entry))) byRange.set(rangeKey(entry), entry);
  }
  const value = [...byRange.values()].join(",");
  env.set("NO_PROXY", value);
  env.set("no_proxy", value);
  return value;
}

/** The canonical form of a `NO_PROXY` entry: a CIDR or address as ipaddr.js writes it. */
function rangeKey(entry: string): string {
  if (ipaddr.isValidCIDR(entry)) {
    const [addr, bits] = ipaddr.parseCIDR(entry);
    return `${addr.toString()}/${bits}`;
  }
  return ipaddr.isValid(entry) ? ipaddr.parse(entry).toString() : entry.toLowerCase();
}

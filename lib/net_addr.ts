/**
 * Address helpers every role needs, over npm:ipaddr.js: the plain form of an address
 * a socket reports (IPv4-mapped IPv6 `::ffff:10.0.0.2` becomes `10.0.0.2`), whether a
 * listen address is a wildcard, and the bracketing of IPv6 literals in URLs and
 * `Host` headers. One definition of each, so no two places disagree.
 *
 * ```ts
 * import { hostPort, isWildcard, plainAddress, urlHost } from "./net_addr.ts";
 *
 * console.assert(plainAddress("::ffff:127.0.0.2") === "127.0.0.2");
 * console.assert(isWildcard("0.0.0.0") && isWildcard("::") && !isWildcard("127.0.0.1"));
 * console.assert(urlHost("::1") === "[::1]" && urlHost("127.0.0.1") === "127.0.0.1");
 * console.assert(hostPort("fe80::1", 5805) === "[fe80::1]:5805");
 * ```
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/**
 * The plain form of an address: an IPv4-mapped IPv6 address as its IPv4 address, an
 * IPv6 address in its canonical short form, anything else (a hostname) unchanged.
 */
export function plainAddress(host: string): string {
  if (!ipaddr.isValid(host)) return host;
  return ipaddr.process(host).toString();
}

/** Whether a listen address means "every interface" (`0.0.0.0`, `::`, or empty). */
export function isWildcard(host: string): boolean {
  if (host === "") return true;
  if (!ipaddr.isValid(host)) return false;
  const addr = ipaddr.process(host);
  return addr.range() === "unspecified";
}

/** Whether an address is a loopback address (127.0.0.0/8, ::1, or their mapped forms). */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (!ipaddr.isValid(host)) return false;
  return ipaddr.process(host).range() === "loopback";
}

/** Whether a string is an IPv6 literal (no brackets), which URLs and `Host` must bracket. */
export function isIPv6(host: string): boolean {
  return ipaddr.IPv6.isValid(host) && !ipaddr.IPv4.isValid(host);
}

/** A host as it appears in a URL or a `Host` header: IPv6 literals in brackets. */
export function urlHost(host: string): string {
  return isIPv6(host) || (host.includes(":") && !host.startsWith("[")) ? `[${host}]` : host;
}

/** `host:port`, with IPv6 literals bracketed. */
export function hostPort(host: string, port: number): string {
  return `${urlHost(host)}:${port}`;
}

/** An `http://host:port` base URL, with IPv6 literals bracketed. */
export function httpUrl(host: string, port: number): string {
  return `http://${hostPort(host, port)}`;
}

/** The address to reach a server listening on `host`: loopback when it listens everywhere. */
export function reachableHost(host: string): string {
  return isWildcard(host) ? "127.0.0.1" : host;
}

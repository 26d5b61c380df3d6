/**
 * Who may talk to a peer's main HTTP server from a browser: the `Host` a request
 * names must be one of the peer's own names (against DNS rebinding, where a name the
 * attacker controls is made to point at the peer), and a control API request sent
 * by a page (`Origin`, `Sec-Fetch-Site`) must come from the peer's own origin
 * (against cross-site requests: a `text/plain` POST needs no preflight). No CORS
 * header is ever given, so no other origin reads an answer either.
 *
 * The own names: the listen address, and `localhost`/`127.0.0.1`/`[::1]` when it is
 * one of them or a wildcard address; when the peer listens on every address
 * (`0.0.0.0`, `::`), also the addresses of the machine's interfaces
 * (`Deno.networkInterfaces()`, nothing is scanned); always the machine's host name
 * (and `NAME.local`). Each with the server's port (bare too on port 80 or 443).
 *
 * @module
 */
import { hostPort, isWildcard, urlHost } from "../lib/net_addr.ts";

/** Where the machine's names come from (real ones by default; tests give their own). */
export interface MachineNames {
  /** The machine's host name. */
  hostname(): string;
  /** The addresses of its interfaces. */
  addresses(): string[];
}

const MACHINE: MachineNames = {
  hostname: () => Deno.hostname(),
  addresses: () => Deno.networkInterfaces().map((i) => i.address),
};

/**
 * The `Host` values (lower case, `host:port`) under which a server listening on
 * `listenHost`:`port` is the peer's own.
 */
export function ownHosts(
  listenHost: string,
  port: number,
  machine: MachineNames = MACHINE,
): Set<string> {
  const names = new Set<string>([listenHost]);
  if (isWildcard(listenHost) || ["127.0.0.1", "::1", "localhost"].includes(listenHost)) {
    for (const n of ["localhost", "127.0.0.1", "::1"]) names.add(n);
  }
  if (isWildcard(listenHost)) {
    try {
      for (const a of machine.addresses()) names.add(a.replace(/%.*$/, ""));
    } catch {
      // No interfaces to list (no permission, say): the loopback names remain.
    }
  }
  try {
    const h = machine.hostname().toLowerCase();
    if (h) names.add(h).add(`${h}.local`);
  } catch {
    // No host name known.
  }
  const hosts = new Set<string>();
  for (const n of names) {
    hosts.add(hostPort(n, port).toLowerCase());
    if (port === 80 || port === 443) hosts.add(urlHost(n).toLowerCase());
  }
  return hosts;
}

/** Why a `Host` header is not one of `own`, or undefined when it is. */
export function hostProblem(host: string | null | undefined, own: ReadonlySet<string>) {
  if (!host) return "The request names no Host";
  if (!own.has(host.trim().toLowerCase())) {
    return `Host '${host.slice(0, 100)}' is not a name of this peer`;
  }
  return undefined;
}

/**
 * Why a request with `headers` does not come from `ownOrigin` (e.g.
 * `http://127.0.0.1:5805`), or undefined when it does or names no origin (a client
 * that is no browser, or a link typed or opened by the user).
 */
export function originProblem(headers: Headers, ownOrigin: string): string | undefined {
  const site = headers.get("sec-fetch-site");
  if (site === "cross-site" || site === "same-site") {
    return `A request from another site (${site}) may not use the control API`;
  }
  const origin = headers.get("origin");
  if (origin !== null && origin.toLowerCase() !== ownOrigin.toLowerCase()) {
    return `Origin '${origin.slice(0, 100)}' may not use the control API of ${ownOrigin}`;
  }
  return undefined;
}

/**
 * The origin a request reached, as a page there has it: from `X-Forwarded-Proto` and
 * `-Host` when the main server relayed it, else from `Host`.
 */
export function requestOrigin(headers: Headers, fallbackProto = "http"): string {
  const proto = headers.get("x-forwarded-proto") ?? fallbackProto;
  const host = headers.get("x-forwarded-host") ?? headers.get("host") ?? "";
  return `${proto}://${host}`;
}

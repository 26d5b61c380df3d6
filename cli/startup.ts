/**
 * What `p2p peer` says on its console: one block at start (its name and id, the
 * address to open in a browser, the one-time login link, the network, the tracker,
 * its ports), then a line whenever the tracker is first reached, lost or back, read
 * from the peer's own activity records (`tracker.register`, `tracker.error`).
 *
 * The first line keeps the form scripts and tests read (`p2p peer ID "NAME"
 * listening: chunks tcp://…, http URL, …`).
 *
 * ```ts
 * import { browserUrl } from "./startup.ts";
 *
 * console.assert(browserUrl("http://127.0.0.2:5805", "127.0.0.2") === "http://127.0.0.2:5805/");
 * ```
 *
 * @module
 */
import type { ActivityRecord } from "../proto/activity.ts";
import { hostPort, isWildcard, urlHost } from "../lib/net_addr.ts";
import { humanMessage } from "./errors.ts";

/** What the start-up block shows. */
export interface StartupFacts {
  peerId: string;
  name: string;
  host: string;
  chunkPort: number;
  /** The TLS link port, when there is one. */
  linkTlsPort?: number;
  httpUrl: string;
  pingbackPort?: number;
  /** The app port the main server proxies to, when it is the built-in one. */
  appUrl?: string;
  dataDir: string;
  loginUrl: string;
  /** The network line (`network: OPEN…` or `network: protected…`). */
  membership: string;
  tracker?: string;
}

/**
 * The address people open in a browser: the main server's, named by this machine's
 * host name when the peer listens on every address (so other devices can use it too).
 */
export function browserUrl(httpUrl: string, host: string, hostname = Deno.hostname()): string {
  const url = new URL(httpUrl);
  if (isWildcard(host)) url.hostname = urlHost(hostname);
  return `${url.origin}/`;
}

/** The start-up block's lines. */
export function startupLines(f: StartupFacts): string[] {
  const ports = [
    `chunks tcp://${hostPort(f.host, f.chunkPort)}`,
    `http ${f.httpUrl}`,
    ...(f.pingbackPort === undefined ? [] : [`pingback ${f.pingbackPort}`]),
    ...(f.appUrl === undefined ? [] : [`app ${f.appUrl} (served through http)`]),
    ...(f.linkTlsPort === undefined ? [] : [`tls links ${f.linkTlsPort}`]),
  ];
  const open = browserUrl(f.httpUrl, f.host);
  const local = isWildcard(f.host) ? ` (on this machine: ${f.httpUrl}/)` : "";
  return [
    `p2p peer ${f.peerId} "${f.name}" listening: ${ports.join(", ")} (data ${f.dataDir})`,
    `p2p peer: open ${open} in a browser to share and get files${local}`,
    `p2p peer: log in to the web app: ${f.loginUrl} (works once, for 10 minutes)`,
    `p2p peer: ${f.membership}`,
    f.tracker
      ? `p2p peer: tracker ${f.tracker}: registering…`
      : "p2p peer: no tracker: peers come from --peer, --scan and p2p discover",
  ];
}

/**
 * A listener of the peer's activity records that prints when the tracker is first
 * reached, lost (once per outage) and back.
 */
export function trackerWatch(print: (line: string) => void): (r: ActivityRecord) => void {
  // Never reached yet (new, waiting), reached (ok), lost after being reached (lost).
  let state: "new" | "waiting" | "ok" | "lost" = "new";
  return (r) => {
    const url = typeof r.url === "string" ? r.url : "";
    if (r.type === "tracker.register") {
      print(
        state === "lost"
          ? `p2p peer: the tracker ${url} is back`
          : `p2p peer: registered with the tracker ${url}`,
      );
      state = "ok";
    } else if (r.type === "tracker.error" && r.during === undefined) {
      if (state === "lost" || state === "waiting") return;
      const why = humanMessage(String(r.message ?? "no answer"));
      print(
        state === "ok"
          ? `p2p peer: lost the tracker ${url}: ${why}; retrying`
          : `p2p peer: cannot reach the tracker ${url} yet: ${why}; retrying`,
      );
      state = state === "ok" ? "lost" : "waiting";
    }
  };
}

/**
 * Where the peer's main HTTP server (port 5805, a relay from `lib/http_relay/`) sends
 * each request: one of three places. First of all, its `Host` must be one of the
 * peer's own names (`peer/origin_guard.ts`), else 421 JSON `misdirected_host`: a page
 * of a name that an attacker pointed at the peer (DNS rebinding) reaches nothing.
 *
 * - `/_p2p/peers/{peerId}/…`: HTTP over the peer network. For this peer's own id,
 *   the rest of the path is routed again here: `/_p2p/…` to the control API (so a
 *   page of the app, reached through any peer, calls its own peer with relative
 *   URLs), anything else to the application server; for another id, the whole
 *   request goes to that peer's main server, which does the same: inside the
 *   encrypted, authenticated peer link (`tunnel`, see `http_tunnel.ts`) to the
 *   peer whose address a handshake proved, and only there: the gateway has no way
 *   to open a plain HTTP connection to another peer. It goes without this origin's credentials (`Cookie`,
 *   `Authorization` are dropped), and its answer comes back sandboxed
 *   (`Content-Security-Policy: sandbox …` without `allow-same-origin`, and no
 *   `Set-Cookie`): another peer's page runs in an opaque origin, so it can neither
 *   call this peer's control API nor read or set its cookies. Unknown id: 404 JSON; unreachable: 502 JSON;
 *   every hop appends its `Via` entry, so a request that comes back to a hop that
 *   already forwarded it (or exceeds the hop limit) ends with 508 JSON.
 * - `/_p2p/…` otherwise: this peer's own control API, a server of its own on
 *   loopback.
 * - Anything else: reverse-proxied to the application server (`--app URL`, or the
 *   built-in app on `--app-port`), streaming both ways.
 *
 * A request that came over a peer link (its client address is `_p2p-{peerId}`, see
 * `http_tunnel.ts`) reaches only this peer's app, as `/_p2p/peers/{own id}/…`: the
 * control API and forwarding on to a third peer answer 403 JSON `forbidden_over_link`,
 * so a linked peer can never act as this peer's owner, whatever headers it sends.
 * Its `Host` is not checked (it comes from a peer, not a browser of this origin).
 *
 * @module
 */
import { httpUrl } from "../lib/net_addr.ts";
import { headerValue, type RelayRequest, type RelayRoute } from "../lib/http_relay/mod.ts";
import { PeerId } from "../proto/ids.ts";
import { hostProblem } from "./origin_guard.ts";
import { tunnelAddress, tunnelPeer } from "./http_tunnel.ts";

/** The prefix under which any peer's app is reachable by peerId. */
export const PEERS_PREFIX = "/_p2p/peers/";

/**
 * The policy of every answer forwarded from another peer: its pages may run scripts,
 * forms, popups and downloads, but in an opaque origin of their own.
 */
export const FORWARDED_CSP = "sandbox allow-scripts allow-forms allow-popups allow-downloads";

/** What the gateway needs of the peer. */
export interface GatewayOptions {
  /** This peer's id. */
  self: string;
  /** Base URL of the control API's server (on loopback, reached only through here). */
  control: string;
  /** Base URL of the application server, or undefined when there is none. */
  app?: string;
  /**
   * Opens a stream to another peer's main server inside the link to it (see
   * `openHttpTunnel()`): the only way a forwarded request reaches another peer.
   */
  tunnel: (peerId: string) => Promise<Deno.Conn>;
  /** Where another peer's main server is now, or undefined when it is unknown. */
  locate(peerId: string): { host: string; httpPort?: number } | undefined;
  /**
   * The `Host` values under which this peer is reached (lower case `host:port`, see
   * `ownHosts()`); a request naming another is refused.
   */
  hosts: ReadonlySet<string>;
  /** Called for every request forwarded to another peer (`via`: always `link`). */
  onForward?: (
    fields: { peerId: string; upstream: string; via: string; method: string; path: string },
  ) => void;
  /**
   * Called for every request refused for its `Host`, and for every request over a
   * peer link refused for its path (`host` is then the link's `_p2p-{peerId}`).
   */
  onRefused?: (
    fields: { status: number; code: string; method: string; path: string; host: string },
  ) => void;
}

function jsonError(status: number, code: string, message: string): RelayRoute {
  return { answer: { status, json: { error: { code, message } } } };
}

/** This peer's `Via` entry: the protocol and a pseudonym from its peerId. */
export function viaToken(peerId: string): string {
  return `1.1 p2p-${peerId.slice(0, 12)}`;
}

/** Builds the route function of the main HTTP server (see `lib/http_relay/`). */
export function createGateway(opts: GatewayOptions): (req: RelayRequest) => RelayRoute {
  const selfPrefix = `${PEERS_PREFIX}${opts.self}`;
  const isControl = (path: string) => path === "/_p2p" || path.startsWith("/_p2p/");
  const noApp = () =>
    jsonError(404, "no_app", "This peer runs no application server (see p2p peer --app)");

  const overLink = (req: RelayRequest): RelayRoute => {
    const { path } = req;
    if (path === selfPrefix) {
      return { answer: { status: 308, headers: { location: `${path}/${req.search}` } } };
    }
    if (!path.startsWith(`${selfPrefix}/`) || isControl(path.slice(selfPrefix.length))) {
      opts.onRefused?.({
        status: 403,
        code: "forbidden_over_link",
        method: req.method,
        path: path.slice(0, 200),
        host: req.remoteAddr,
      });
      return jsonError(
        403,
        "forbidden_over_link",
        "Over the peer link only this peer's app is served, at /_p2p/peers/{its id}/",
      );
    }
    if (!opts.app) return noApp();
    return { upstream: opts.app, stripPrefix: selfPrefix };
  };

  return (req) => {
    const { path } = req;
    if (tunnelPeer(req.remoteAddr) !== undefined) return overLink(req);
    const host = headerValue(req.headers, "host");
    const problem = hostProblem(host, opts.hosts);
    if (problem) {
      opts.onRefused?.({
        status: 421,
        code: "misdirected_host",
        method: req.method,
        path,
        host: (host ?? "").slice(0, 100),
      });
      return jsonError(421, "misdirected_host", problem);
    }
    if (path.startsWith(PEERS_PREFIX)) {
      const rest = path.slice(PEERS_PREFIX.length);
      const slash = rest.indexOf("/");
      const id = slash < 0 ? rest : rest.slice(0, slash);
      if (!PeerId.safeParse(id).success) {
        return jsonError(400, "invalid_id", `Peer id '${id}' must be 40 lowercase hex digits`);
      }
      if (slash < 0) {
        // The app's relative URLs need the trailing slash.
        return { answer: { status: 308, headers: { location: `${path}/${req.search}` } } };
      }
      if (id === opts.self) {
        // The own control API: what a page loaded from here calls with relative URLs.
        if (isControl(path.slice(selfPrefix.length))) {
          return { upstream: opts.control, stripPrefix: selfPrefix };
        }
        if (!opts.app) return noApp();
        return { upstream: opts.app, stripPrefix: selfPrefix };
      }
      const where = opts.locate(id);
      if (!where) return jsonError(404, "unknown_peer", `No peer '${id}' is known here`);
      if (!where.httpPort) {
        return jsonError(
          502,
          "bad_gateway",
          `Peer '${id}' at ${where.host} has no known HTTP port to forward to`,
        );
      }
      const upstream = httpUrl(where.host, where.httpPort);
      const { tunnel } = opts;
      opts.onForward?.({ peerId: id, upstream, via: "link", method: req.method, path });
      return {
        upstream,
        // Inside the link: the Host and base path still come from `upstream` (the
        // peer's own name), but no connection is ever made to its address.
        connector: { key: tunnelAddress(id), connect: () => tunnel(id) },
        dropRequestHeaders: ["cookie", "authorization"],
        dropAnswerHeaders: ["set-cookie"],
        answerHeaders: { "content-security-policy": FORWARDED_CSP },
      };
    }
    if (isControl(path)) return { upstream: opts.control };
    if (!opts.app) return noApp();
    return { upstream: opts.app };
  };
}

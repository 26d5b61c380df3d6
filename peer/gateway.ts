/**
 * The peer's main HTTP server (port 5805): it routes every request to one of three
 * places.
 *
 * - `/_p2p/peers/{peerId}/…`: HTTP over the peer network. For this peer's own id,
 *   the rest of the path is routed again here: `/_p2p/…` to the control API (so a
 *   page of the app, reached through any peer, calls its own peer with relative
 *   URLs), anything else to the application server; for another id, the whole
 *   request goes as it is to that peer's main server, at the address the peer table
 *   knows now, which does the same. Unknown id: 404 JSON; unreachable: 502 JSON;
 *   every hop appends its `Via` entry, so a request that comes back to a hop that
 *   already forwarded it (or exceeds the hop limit) ends with 508 JSON.
 * - `/_p2p/…` otherwise: this peer's own control API.
 * - Anything else: reverse-proxied to the application server (`--app URL`, or the
 *   built-in app on `--app-port`), streaming both ways.
 *
 * @module
 */
import { PeerId } from "../proto/ids.ts";
import { createProxy, type ProxyError, type ProxyHandler } from "./proxy.ts";

/** The prefix under which any peer's app is reachable by peerId. */
export const PEERS_PREFIX = "/_p2p/peers/";

/** What the gateway needs of the peer. */
export interface GatewayOptions {
  /** This peer's id. */
  self: string;
  /** The control API. */
  control: { fetch(req: Request): Response | Promise<Response> };
  /** Base URL of the application server, or undefined when there is none. */
  app?: string;
  /** Where another peer's main server is now, or undefined when it is unknown. */
  locate(peerId: string): { host: string; httpPort?: number } | undefined;
  /** Upstream timeout of the app and of forwarded requests (default 30 s). */
  timeoutMs?: number;
  /** Called for every proxy failure (502, 504, 508), for the activity log. */
  onError?: (err: ProxyError, req: Request) => void;
  /** Called for every request forwarded to another peer. */
  onForward?: (fields: { peerId: string; upstream: string; method: string; path: string }) => void;
}

/** Client facts of one request, as `Deno.serve` gives them. */
export interface GatewayInfo {
  remoteAddr: string;
  signal?: AbortSignal;
}

function jsonError(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

/** This peer's `Via` entry: the protocol and a pseudonym from its peerId. */
export function viaToken(peerId: string): string {
  return `1.1 p2p-${peerId.slice(0, 12)}`;
}

/** Builds the request handler of the main HTTP server. */
export function createGateway(
  opts: GatewayOptions,
): (req: Request, info: GatewayInfo) => Promise<Response> {
  const via = viaToken(opts.self);
  const common = { via, timeoutMs: opts.timeoutMs, onError: opts.onError };
  const app: ProxyHandler | undefined = opts.app
    ? createProxy({ upstream: opts.app, ...common })
    : undefined;
  const selfPrefix = `${PEERS_PREFIX}${opts.self}`;
  const ownApp: ProxyHandler | undefined = opts.app
    ? createProxy({ upstream: opts.app, stripPrefix: selfPrefix, ...common })
    : undefined;
  /** One proxy per upstream main server, made on first use. */
  const forwarders = new Map<string, ProxyHandler>();

  const noApp = () =>
    jsonError(404, "no_app", "This peer runs no application server (see p2p peer --app)");

  const route = async (req: Request, info: GatewayInfo): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path.startsWith(PEERS_PREFIX)) {
      const rest = path.slice(PEERS_PREFIX.length);
      const slash = rest.indexOf("/");
      const id = slash < 0 ? rest : rest.slice(0, slash);
      if (!PeerId.safeParse(id).success) {
        return jsonError(400, "invalid_id", `Peer id '${id}' must be 40 lowercase hex digits`);
      }
      if (slash < 0) {
        // The app's relative URLs need the trailing slash.
        return new Response(null, { status: 308, headers: { location: `${path}/${url.search}` } });
      }
      if (id === opts.self) {
        const own = path.slice(selfPrefix.length);
        // The own control API: what a page loaded from here calls with relative URLs.
        if (own === "/_p2p" || own.startsWith("/_p2p/")) {
          return await route(
            new Request(new URL(own + url.search, url), {
              method: req.method,
              headers: req.headers,
              body: req.body,
              duplex: "half",
            } as RequestInit),
            info,
          );
        }
        if (!ownApp) return noApp();
        return await ownApp(req, { remoteAddr: info.remoteAddr, signal: info.signal });
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
      const host = where.host.includes(":") ? `[${where.host}]` : where.host;
      const upstream = `http://${host}:${where.httpPort}`;
      let forward = forwarders.get(upstream);
      if (!forward) forwarders.set(upstream, forward = createProxy({ upstream, ...common }));
      opts.onForward?.({ peerId: id, upstream, method: req.method, path });
      return await forward(req, { remoteAddr: info.remoteAddr, signal: info.signal });
    }
    if (path === "/_p2p" || path.startsWith("/_p2p/")) return await opts.control.fetch(req);
    if (!app) return noApp();
    return await app(req, { remoteAddr: info.remoteAddr, signal: info.signal });
  };
  return route;
}

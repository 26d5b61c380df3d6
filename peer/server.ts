/**
 * Runs a peer: the node (TCP chunk service and background work), its built-in
 * application server, its main HTTP server (control API, reverse proxy to the app,
 * forwarding to other peers' apps by peerId), its pingback server for LAN
 * discovery, and a graceful stop for all.
 *
 * @module
 */
import { createAppServer } from "./app_server.ts";
import { createControlApp } from "./control.ts";
import { createGateway, viaToken } from "./gateway.ts";
import { PeerNode, type PeerOptions } from "./node.ts";
import { type PingbackServer, startPingback } from "./pingback.ts";
import { type Relay, startRelay } from "../lib/http_relay/mod.ts";

/** A running peer process. */
export interface RunningPeer {
  node: PeerNode;
  /** Base URL of the main HTTP server, e.g. `http://127.0.0.2:5805`. */
  httpUrl: string;
  /** Base URL of the application server the main server proxies to, if any. */
  appUrl?: string;
  /** Stops every server and the node (idempotent). */
  stop(): Promise<void>;
  /** Settles once stopped. */
  finished: Promise<void>;
}

const WILDCARDS = new Set(["0.0.0.0", "::", ""]);

/** A URL host part for an address. */
function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Starts a Deno.serve server and resolves once it listens. */
async function serve(
  hostname: string,
  port: number,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  onError: (err: unknown) => Response,
): Promise<{ server: Deno.HttpServer<Deno.NetAddr>; addr: Deno.NetAddr }> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({ hostname, port, onListen: listening.resolve, onError }, handler);
  return { server, addr: await listening.promise };
}

/** Starts a peer and resolves once all its servers listen. */
export async function startPeer(opts: PeerOptions): Promise<RunningPeer> {
  const node = await PeerNode.start(opts);
  const servers: Deno.HttpServer[] = [];
  let pingback: PingbackServer | undefined;
  let relay: Relay | undefined;
  const onError = (during: string) => (err: unknown) => {
    node.log.record("error", { during, message: String(err) });
    return Response.json({ error: { code: "unavailable", message: String(err) } }, {
      status: 503,
    });
  };
  let httpUrl: string;
  let appUrl: string | undefined = opts.app;
  try {
    const control = createControlApp(node);
    if (!appUrl && opts.appPort !== undefined) {
      // The built-in app: on loopback when the peer listens everywhere, since the main
      // server is its front door; on the peer's own address otherwise, so that many
      // peers on 127.0.0.x can each have one on the default port.
      const appHost = WILDCARDS.has(opts.host) ? "127.0.0.1" : opts.host;
      const app = await createAppServer();
      const s = await serve(appHost, opts.appPort, (req) => app.fetch(req), onError("app"));
      servers.push(s.server);
      node.appPort = s.addr.port;
      appUrl = `http://${urlHost(appHost)}:${s.addr.port}`;
    }
    // The control API listens on loopback only; the main server relays to it.
    const controlServer = await serve("127.0.0.1", 0, (req) => control.fetch(req), onError("http"));
    servers.push(controlServer.server);
    const route = createGateway({
      self: node.identity.peerId,
      control: `http://127.0.0.1:${controlServer.addr.port}`,
      app: appUrl,
      locate: (peerId) => {
        const p = node.table.get(peerId);
        return p && { host: p.host, httpPort: p.ports.http };
      },
      onForward: (f) => node.log.record("proxy.forward", f),
    });
    relay = startRelay({
      hostname: opts.host,
      port: opts.httpPort,
      via: viaToken(node.identity.peerId),
      route,
      onError: (err, req) =>
        node.log.record("proxy.error", {
          status: err.status,
          method: req.method,
          path: req.path,
          message: err.message,
        }),
    });
    node.httpPort = relay.addr.port;
    node.httpStats = () => ({ ...relay!.stats() });
    httpUrl = `http://${
      WILDCARDS.has(relay.addr.hostname) ? "127.0.0.1" : urlHost(relay.addr.hostname)
    }:${relay.addr.port}`;
    if (opts.pingbackPort !== undefined) {
      pingback = await startPingback({
        hostname: opts.host,
        port: opts.pingbackPort,
        identity: node.identity,
        name: opts.name,
        ports: () => {
          const { pingback: _, ...rest } = node.ports();
          return rest;
        },
        onRequest: (f) => node.log.record("pingback", f),
      });
      node.pingbackPort = pingback.addr.port;
    }
  } catch (err) {
    await pingback?.stop();
    await relay?.close(0);
    await node.stop(0);
    await Promise.all(servers.map((s) => s.shutdown()));
    throw err;
  }
  node.begin();
  const done = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      await pingback?.stop();
      await relay?.close();
      await node.stop();
      await Promise.all(servers.map((s) => s.shutdown()));
      done.resolve();
    })();
  return { node, httpUrl, ...(appUrl ? { appUrl } : {}), stop, finished: done.promise };
}

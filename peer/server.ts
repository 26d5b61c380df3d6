/**
 * Runs a peer: its data directory, the node (TCP chunk service and background work),
 * its built-in application server, its main HTTP server (control API, reverse proxy
 * to the app, forwarding to other peers' apps by peerId), its pingback server for LAN
 * discovery, and a graceful stop for all.
 *
 * The control API needs the owner's token (`peer/control_token.ts`, in the data
 * directory); the peer lists itself in the per-user registry of running peers
 * (`lib/peer_registry.ts`) so that the client commands find it, and makes a one-time
 * login link for the web app (`RunningPeer.loginUrl`). The main server answers only
 * to its own names (`peer/origin_guard.ts`).
 *
 * The main server takes at most `rateLimit` requests a second from one address
 * (429 `rate_limited` with `Retry-After`). Its refusals (429, 421) and the control
 * API's (401, 403) are activity records folded per address and code
 * (`PeerLog.refused()`), so that a flood cannot fill the log.
 *
 * @module
 */
import { createAppServer } from "./app_server.ts";
import { createControlApp } from "./control.ts";
import { ControlAuth, loadControlToken } from "./control_token.ts";
import { ownHosts } from "./origin_guard.ts";
import { registerPeer, registryDir } from "../lib/peer_registry.ts";
import { defaultDataDir } from "../cli/options.ts";
import { openPeerData } from "./data_dir.ts";
import { createGateway, viaToken } from "./gateway.ts";
import { PeerNode, type PeerOptions } from "./node.ts";
import { DEFAULT_RATE_LIMIT } from "./options.ts";
import { type PingbackServer, startPingback } from "./pingback.ts";
import { type Relay, startRelay } from "../lib/http_relay/mod.ts";
import { errorBody } from "../lib/http_api.ts";
import { P2pError } from "../proto/errors.ts";
import { httpUrl, reachableHost } from "../lib/net_addr.ts";
import { startSearch } from "./search/registry.ts";

/** A running peer process. */
export interface RunningPeer {
  node: PeerNode;
  /** Base URL of the main HTTP server, e.g. `http://127.0.0.2:5805` (`https://` with `tls`). */
  httpUrl: string;
  /** Base URL of the application server the main server proxies to, if any. */
  appUrl?: string;
  /**
   * A one-time link that logs a browser in to the web app (sets the token cookie):
   * valid once, for 10 minutes (`LOGIN_CODE_TTL_MS`).
   */
  loginUrl: string;
  /** The file that holds the control API's token (mode 600). */
  tokenFile: string;
  /** Checks the token, and makes more one-time login codes. */
  auth: ControlAuth;
  /** Stops every server and the node (idempotent). */
  stop(): Promise<void>;
  /** Settles once stopped. */
  finished: Promise<void>;
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

/**
 * Starts a peer and resolves once all its servers listen. Every port is bound before
 * the node is built, so the node knows them all from the start: the data directory
 * is opened, then the chunk port, the app, the control API (on loopback), the main
 * HTTP server and the pingback port are bound, then the node starts over them. The
 * control API's requests wait for the node (only the main server knows its port).
 */
export async function startPeer(opts: PeerOptions): Promise<RunningPeer> {
  const data = await openPeerData(opts.dataDir, { echo: opts.echo, maxStore: opts.maxStore });
  const { identity, log, table } = data;
  const servers: Deno.HttpServer[] = [];
  const control = Promise.withResolvers<ReturnType<typeof createControlApp>>();
  control.promise.catch(() => undefined);
  let chunkListener: Deno.TcpListener | undefined;
  let pingback: PingbackServer | undefined;
  let relay: Relay | undefined;
  let node: PeerNode | undefined;
  const onError = (during: string) => (err: unknown) => {
    log.record("error", { during, message: String(err) });
    return Response.json(errorBody("unavailable", String(err)), { status: 503 });
  };
  let mainUrl: string;
  let appUrl: string | undefined = opts.app;
  let tokenFile: string;
  let auth: ControlAuth;
  let unregister = () => {};
  let searchClosed = () => Promise.resolve();
  /** The Host values of the main server, known once it listens. */
  const hosts = new Set<string>();
  try {
    const token = await loadControlToken(data.dataDir);
    tokenFile = token.path;
    auth = new ControlAuth(token.token);
    chunkListener = Deno.listen({ hostname: opts.host, port: opts.port, transport: "tcp" });
    const chunk = chunkListener.addr.port;
    let app: number | undefined;
    if (!appUrl && opts.appPort !== undefined) {
      // The built-in app: on loopback when the peer listens everywhere, since the main
      // server is its front door; on the peer's own address otherwise, so that many
      // peers on 127.0.0.x can each have one on the default port.
      const appHost = reachableHost(opts.host);
      // Opened directly, it sends the browser to the main server (see app_server.ts).
      const appServer = await createAppServer({
        via: viaToken(identity.peerId),
        main: () => mainUrl,
      });
      const s = await serve(appHost, opts.appPort, (req) => appServer.fetch(req), onError("app"));
      servers.push(s.server);
      app = s.addr.port;
      appUrl = httpUrl(appHost, app);
    }
    // The control API listens on loopback only; the main server relays to it.
    const controlServer = await serve(
      "127.0.0.1",
      0,
      async (req) => (await control.promise).fetch(req),
      onError("http"),
    );
    servers.push(controlServer.server);
    const route = createGateway({
      self: identity.peerId,
      control: httpUrl("127.0.0.1", controlServer.addr.port),
      app: appUrl,
      hosts,
      // Inside the link to the peer: never plain HTTP to another peer's main server.
      tunnel: (peerId) =>
        node
          ? node.openHttpTunnel(peerId)
          : Promise.reject(new P2pError("starting", "The peer is still starting")),
      locate: (peerId) => {
        // Only an address a handshake proved: never one learned from others.
        const p = table.getProven(peerId);
        return p && { host: p.host, httpPort: p.ports.http };
      },
      onForward: (f) => log.record("proxy.forward", f),
      onRefused: (f) => log.refused("http.refused", f),
    });
    const rate = opts.rateLimit ?? DEFAULT_RATE_LIMIT;
    const running = relay = startRelay({
      hostname: opts.host,
      port: opts.httpPort,
      via: viaToken(identity.peerId),
      ...(opts.tls ? { tls: opts.tls } : {}),
      route,
      requestsPerSecond: rate,
      requestBurst: rate * 2,
      onRefused: (r) => log.refused("http.refused", { ...r }),
      onError: (err, req) =>
        log.record("proxy.error", {
          status: err.status,
          method: req.method,
          path: req.path,
          message: err.message,
        }),
    });
    const http = relay.addr.port;
    for (const h of ownHosts(relay.addr.hostname, http)) hosts.add(h);
    /** A base URL of the main server: `https://` when it serves TLS. */
    const baseUrl = (host: string) =>
      httpUrl(host, http).replace(/^http:/, opts.tls ? "https:" : "http:");
    mainUrl = baseUrl(reachableHost(relay.addr.hostname));
    if (opts.pingbackPort !== undefined) {
      pingback = await startPingback({
        hostname: opts.host,
        port: opts.pingbackPort,
        identity,
        name: opts.name,
        networkKey: opts.networkKey,
        ports: () => ({ chunk, http, ...(app ? { app } : {}) }),
        onRequest: (f) => log.record("pingback", f),
      });
    }
    node = PeerNode.start(opts, {
      data,
      chunkListener,
      ports: { http, pingback: pingback?.addr.port, app },
      httpStats: () => ({ ...running.stats() }),
      serveHttp: (conn) => running.serve(conn),
    });
    control.resolve(createControlApp(node, { auth }));
    searchClosed = startSearch(data.store, log, opts.search);
    // The TLS link port listens once the link certificate is made: up before we return.
    await node.linkTls;
    // Under every name it answers to, so `--node` finds it however it names it.
    const urls = new Set([
      mainUrl,
      ...[...hosts].map((h) => `${opts.tls ? "https" : "http"}://${h}`),
    ]);
    try {
      unregister = await registerPeer(registryDir(defaultDataDir()), {
        pid: Deno.pid,
        peerId: identity.peerId,
        urls: [...urls],
        tokenFile,
        started: Date.now(),
      });
    } catch (err) {
      // The peer works without it: the client commands then need --token.
      log.record("error", { during: "registry", message: String(err) });
    }
  } catch (err) {
    control.reject(err);
    await pingback?.stop();
    await relay?.close(0);
    if (node) await node.stop(0);
    else {
      try {
        chunkListener?.close();
      } catch { /* already closed */ }
      data.close();
    }
    await Promise.all(servers.map((s) => s.shutdown()));
    throw err;
  }
  const done = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const started = node;
  const stop = () =>
    stopping ??= (async () => {
      unregister();
      await pingback?.stop();
      await relay?.close();
      await started.stop();
      await searchClosed();
      await Promise.all(servers.map((s) => s.shutdown()));
      done.resolve();
    })();
  return {
    node,
    httpUrl: mainUrl,
    ...(appUrl ? { appUrl } : {}),
    loginUrl: `${mainUrl}/_p2p/login?once=${auth.loginCode()}`,
    tokenFile,
    auth,
    stop,
    finished: done.promise,
  };
}

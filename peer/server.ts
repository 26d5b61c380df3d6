/**
 * Runs a peer: the node (TCP chunk service and background work), its HTTP server
 * carrying the control API, its pingback server for LAN discovery, and a graceful
 * stop for all.
 *
 * @module
 */
import { createControlApp } from "./control.ts";
import { PeerNode, type PeerOptions } from "./node.ts";
import { type PingbackServer, startPingback } from "./pingback.ts";

/** A running peer process. */
export interface RunningPeer {
  node: PeerNode;
  /** Base URL of the HTTP server, e.g. `http://127.0.0.2:5805`. */
  httpUrl: string;
  /** Stops the HTTP server and the node (idempotent). */
  stop(): Promise<void>;
  /** Settles once stopped. */
  finished: Promise<void>;
}

/** Starts a peer and resolves once both servers listen. */
export async function startPeer(opts: PeerOptions): Promise<RunningPeer> {
  const node = await PeerNode.start(opts);
  const app = createControlApp(node);
  const listening = Promise.withResolvers<Deno.NetAddr>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: opts.host,
      port: opts.httpPort,
      onListen: (addr) => listening.resolve(addr),
      onError: (err) => {
        node.log.record("error", { during: "http", message: String(err) });
        return Response.json({ error: { code: "unavailable", message: String(err) } }, {
          status: 503,
        });
      },
    }, (req) => app.fetch(req));
  } catch (err) {
    await node.stop(0);
    throw err;
  }
  const addr = await listening.promise;
  node.httpPort = addr.port;
  let pingback: PingbackServer | undefined;
  if (opts.pingbackPort !== undefined) {
    try {
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
    } catch (err) {
      await node.stop(0);
      await server.shutdown();
      throw err;
    }
    node.pingbackPort = pingback.addr.port;
  }
  node.begin();
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const httpUrl = `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${addr.port}`;
  const done = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      await pingback?.stop();
      await node.stop();
      await server.shutdown();
      done.resolve();
    })();
  return { node, httpUrl, stop, finished: done.promise };
}

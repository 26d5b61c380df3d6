/**
 * A `Deno.serve` server for tests: listens on a loopback address (port 0 by default),
 * resolves once it listens, and stops with `await using` or `stop()`.
 *
 * @module
 */
import { httpUrl } from "../lib/net_addr.ts";

/** A running test server. */
export interface TestServer extends AsyncDisposable {
  addr: Deno.NetAddr;
  port: number;
  /** `http://HOST:PORT`. */
  url: string;
  /** Stops it (idempotent). */
  stop(): Promise<void>;
}

/** Serves `handler` on `hostname:port` (127.0.0.1:0 by default). */
export async function serveLocal(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  hostname = "127.0.0.1",
  port = 0,
): Promise<TestServer> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({ hostname, port, onListen: listening.resolve }, handler);
  const addr = await listening.promise;
  let down: Promise<void> | undefined;
  const stop = () => down ??= server.shutdown();
  return {
    addr,
    port: addr.port,
    url: httpUrl(hostname, addr.port),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

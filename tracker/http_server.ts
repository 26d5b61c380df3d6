/**
 * The tracker's HTTP(S) listener: `Deno.serve` behind the gate of `lib/http_gate.ts`,
 * because a stranger must not be able to hold the tracker's sockets and `Deno.serve`
 * alone cannot stop that (a head that trickles a byte a second stays open for as
 * long as it trickles, and it tells nothing of connections). The gate gives:
 *
 * - at most `connectionsPerAddress` open connections per remote address and
 *   `maxConnections` in all; one more is answered `429` (plain HTTP) and closed;
 * - the request head must arrive whole within `headTimeoutMs` and the whole request
 *   within `requestTimeoutMs` (`408`), a head over `maxHeadBytes` is `431`, and any
 *   request the relay's codec refuses is `400`: each a JSON error body, then the close;
 * - an idle keep-alive connection closes after `idleTimeoutMs`.
 *
 * What it costs, measured with `bench/run.ts tracker_http` (figures in its module
 * doc): `node:http`, which carried these limits before, took about 90 MiB more
 * memory under load (its per-request garbage grows the young-generation heap) for the
 * same request rate; the gate holds the tracker's peak RSS under `GET /health` at
 * 122-128 MiB instead of 199-225 MiB, at 10,000-15,000 requests a second on the
 * shared 2-core VM (`node:http` 7,000-20,000 in the same runs, `Deno.serve` without
 * limits 14,500-34,000). Small requests (every request of a heartbeating peer) are
 * answered by the gate itself; a connection that sends a large or chunked body costs a
 * second, loopback one to the inner server.
 *
 * @module
 */
import {
  type GateLimits,
  type GateOptions,
  type GateRefusal,
  startGate,
} from "../lib/http_gate.ts";

/** Limits of the listener. */
export type ListenerLimits = GateLimits;

/** Defaults of `ListenerLimits`. */
export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  connectionsPerAddress: 64,
  maxConnections: 2048,
  headTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 15_000,
  maxHeadBytes: 16 * 1024,
};

/** What the listener tells its owner about connections and requests it refused itself. */
export type RefusalReporter = (fields: GateRefusal) => void;

/** Options of `listen()`: where, the limits, the handler and what it reports. */
export type ListenOptions = GateOptions;

/** A listening server. */
export interface Listener {
  addr: Deno.NetAddr;
  /** Stops accepting, lets requests under way finish (10 s at most), then closes every connection. */
  shutdown(): Promise<void>;
}

/** How long a stop waits for the requests under way. */
const STOP_GRACE_MS = 10_000;

/** Starts listening; resolves once the port is bound. */
export async function listen(opts: ListenOptions): Promise<Listener> {
  const gate = await startGate(opts);
  return { addr: gate.addr, shutdown: () => gate.shutdown(STOP_GRACE_MS) };
}

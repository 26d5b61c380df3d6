/**
 * Runs a tracker: opens its KV database and activity log, serves the Hono app over
 * HTTP, or HTTPS when given a certificate (`http_server.ts`: connection caps and
 * slow-client limits), expires silent peers in the background and shuts down
 * gracefully.
 *
 * @module
 */
import { ActivityLog } from "./activity.ts";
import { createTrackerApp } from "./app.ts";
import {
  DEFAULT_LISTENER_LIMITS,
  listen,
  type Listener,
  type ListenerLimits,
} from "./http_server.ts";
import { IdentityCheck } from "./identity.ts";
import { Metrics } from "./metrics.ts";
import { RequestRate } from "../lib/request_rate.ts";
import { ReplayCache } from "./replay_cache.ts";
import { TrackerStore } from "./store.ts";
import { VERSION } from "../version.ts";
import { errorMessage } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";

/** Limits against abuse; see `http_server.ts` and `lib/request_rate.ts`. */
export interface TrackerLimits extends ListenerLimits {
  /** Requests a second per remote address (0: no limit). */
  requestsPerSecond: number;
  /** Requests an address may send at once before its rate applies. */
  requestBurst: number;
}

/** Defaults of `TrackerLimits`: generous for a LAN of peers, tight for one stranger. */
export const DEFAULT_TRACKER_LIMITS: TrackerLimits = {
  ...DEFAULT_LISTENER_LIMITS,
  requestsPerSecond: 200,
  requestBurst: 400,
};

/** Options of `startTracker()`; see `p2p tracker --help`. */
export interface TrackerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Deno KV database file. */
  db: string;
  /** JSON-lines activity file. */
  log: string;
  /** Seconds a peer stays listed without a heartbeat. */
  peerTtl: number;
  /** Largest payload `POST /payloads` accepts, in bytes. */
  maxUpload: number;
  /** Activity records kept in KV. */
  keepActivity?: number;
  /**
   * The network key: every request must prove it (see `docs/architecture.md`, Trust).
   * Undefined: an open network, where anyone may register.
   */
  networkKey?: Uint8Array;
  /** PEM certificate chain and private key: serve HTTPS instead of HTTP. */
  tls?: { cert: string; key: string };
  /** Limits against abuse; each one missing takes its default (`DEFAULT_TRACKER_LIMITS`). */
  limits?: Partial<TrackerLimits>;
}

/** A running tracker. */
export interface RunningTracker {
  /** Base URL, e.g. `http://127.0.0.1:5700` (`https://…` with TLS). */
  url: string;
  port: number;
  /** Stops accepting, finishes in-flight requests, closes KV and the log (idempotent). */
  stop(): Promise<void>;
  /** Settles when the tracker has stopped. */
  finished: Promise<void>;
}

/** Starts a tracker and resolves once it listens. */
export async function startTracker(opts: TrackerOptions): Promise<RunningTracker> {
  const kv = await Deno.openKv(opts.db);
  let activity: ActivityLog;
  try {
    activity = await ActivityLog.open(kv, { path: opts.log, keep: opts.keepActivity });
  } catch (err) {
    kv.close();
    throw err;
  }
  const peerTtlMs = opts.peerTtl * 1000;
  // A listing shows lastSeen to a few seconds, well within a peer's TTL.
  const store = new TrackerStore(kv, activity, Date.now, {
    listingCoarseMs: Math.min(5_000, peerTtlMs / 4),
  });
  await store.load();
  const metrics = new Metrics();
  const limits: TrackerLimits = { ...DEFAULT_TRACKER_LIMITS, ...opts.limits };
  const replay = new ReplayCache();
  const app = createTrackerApp({
    store,
    activity,
    metrics,
    config: { peerTtlMs, maxUpload: opts.maxUpload, version: VERSION, networkKey: opts.networkKey },
    identity: new IdentityCheck(replay),
    replay,
    rate: new RequestRate({ rate: limits.requestsPerSecond, burst: limits.requestBurst }),
  });

  let server: Listener;
  try {
    server = await listen({
      hostname: opts.host,
      port: opts.port,
      tls: opts.tls,
      limits,
      handler: (req, remoteAddr) => app.fetch(req, { remoteAddr }),
      // What the listener refuses itself: five records a minute per address and code.
      onRefused: (fields) => activity.recordFolded("error", fields, ["remote", "code"]),
      onError: (err) => console.error(`tracker: ${errorMessage(err)}`),
    });
  } catch (err) {
    await activity.close();
    kv.close();
    throw err;
  }
  const addr = server.addr;
  const url = `${opts.tls ? "https" : "http"}://${hostPort(addr.hostname, addr.port)}`;
  activity.record("tracker.start", {
    url,
    db: opts.db,
    version: VERSION,
    peerTtl: opts.peerTtl,
    maxUpload: opts.maxUpload,
    network: opts.networkKey ? "protected" : "open",
  });

  // Background upkeep: expire silent peers and prune old activity.
  let sweepTimer: ReturnType<typeof setTimeout> | undefined;
  let sweeping: Promise<void> = Promise.resolve();
  let stopped = false;
  const sweepEvery = Math.max(250, Math.min(peerTtlMs / 2, 30_000));
  const sweep = () => {
    sweeping = (async () => {
      try {
        await store.expirePeers();
        await activity.prune();
      } catch (err) {
        console.error(`tracker: upkeep failed: ${err}`);
        activity.record("storage.error", { during: "upkeep", message: String(err) });
      }
    })();
    sweeping.then(() => {
      if (!stopped) sweepTimer = setTimeout(sweep, sweepEvery);
    });
  };
  sweep();

  const done = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      stopped = true;
      clearTimeout(sweepTimer);
      await server.shutdown();
      await sweeping;
      activity.record("tracker.stop", { url });
      await activity.close();
      kv.close();
      done.resolve();
    })();
    return stopping;
  };
  return { url, port: addr.port, stop, finished: done.promise };
}

/**
 * Runs a tracker: opens its KV database and activity log, serves the Hono app on
 * Deno.serve, expires silent peers in the background and shuts down gracefully.
 *
 * @module
 */
import { ActivityLog } from "./activity.ts";
import { createTrackerApp } from "./app.ts";
import { Metrics } from "./metrics.ts";
import { TrackerStore } from "./store.ts";
import { VERSION } from "../version.ts";
import { errorBody } from "../lib/http_api.ts";
import { httpUrl } from "../lib/net_addr.ts";

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
}

/** A running tracker. */
export interface RunningTracker {
  /** Base URL, e.g. `http://127.0.0.1:5700`. */
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
  const store = new TrackerStore(kv, activity);
  await store.load();
  const metrics = new Metrics();
  const peerTtlMs = opts.peerTtl * 1000;
  const app = createTrackerApp({
    store,
    activity,
    metrics,
    config: { peerTtlMs, maxUpload: opts.maxUpload, version: VERSION },
  });

  const listening = Promise.withResolvers<Deno.NetAddr>();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: opts.host,
      port: opts.port,
      onListen: (addr) => listening.resolve(addr),
      onError: (err) => {
        console.error(`tracker: ${err}`);
        return Response.json(errorBody("unavailable", "Tracker cannot serve this now"), {
          status: 503,
        });
      },
    }, (req, info) => app.fetch(req, info));
  } catch (err) {
    await activity.close();
    kv.close();
    throw err;
  }
  const addr = await listening.promise;
  const url = httpUrl(addr.hostname, addr.port);
  activity.record("tracker.start", {
    url,
    db: opts.db,
    version: VERSION,
    peerTtl: opts.peerTtl,
    maxUpload: opts.maxUpload,
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

/**
 * What the tracker's HTTP routes are built from: its settings, its store, activity
 * log and metrics, and the Hono environment that carries the caller's address.
 *
 * @module
 */
import type { ActivityLog } from "./activity.ts";
import type { IdentityCheck } from "./identity.ts";
import type { RequestRate } from "../lib/request_rate.ts";
import type { ReplayCache } from "./replay_cache.ts";
import type { Metrics } from "./metrics.ts";
import type { TrackerStore } from "./store.ts";

/** Settings of a tracker. */
export interface TrackerConfig {
  /** A peer that does not heartbeat within this many ms expires. */
  peerTtlMs: number;
  /** Largest payload `POST /payloads` accepts, in bytes. */
  maxUpload: number;
  /** Software version, reported by `/health`. */
  version: string;
  /** The network key every request must prove; undefined: an open network. */
  networkKey?: Uint8Array;
}

/** What `createTrackerApp()` needs. */
export interface TrackerDeps {
  store: TrackerStore;
  activity: ActivityLog;
  metrics: Metrics;
  config: TrackerConfig;
  /** Checks the signatures of peers on their own records. */
  identity: IdentityCheck;
  /** Nonces and signatures taken within the freshness window. */
  replay: ReplayCache;
  /** Request-rate limits per address (off when its rate is 0). */
  rate: RequestRate;
}

/** Hono environment: Deno.serve's connection info arrives as the bindings. */
export type TrackerEnv = { Bindings: { remoteAddr?: Deno.NetAddr } };

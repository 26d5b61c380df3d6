/**
 * What the tracker's HTTP routes are built from: its settings, its store, activity
 * log and metrics, and the Hono environment that carries the caller's address.
 *
 * @module
 */
import type { ActivityLog } from "./activity.ts";
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
}

/** What `createTrackerApp()` needs. */
export interface TrackerDeps {
  store: TrackerStore;
  activity: ActivityLog;
  metrics: Metrics;
  config: TrackerConfig;
}

/** Hono environment: Deno.serve's connection info arrives as the bindings. */
export type TrackerEnv = { Bindings: { remoteAddr?: Deno.NetAddr } };

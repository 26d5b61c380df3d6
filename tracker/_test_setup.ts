/**
 * Test fixture: a tracker app on a real KV file in a temporary directory, with a
 * clock the test moves by hand. Dispose it with `await using`.
 *
 * @module
 */
import { ActivityLog } from "./activity.ts";
import { createTrackerApp } from "./app.ts";
import { Metrics } from "./metrics.ts";
import { TrackerStore } from "./store.ts";

/** A tracker app under test. */
export interface TestTracker extends AsyncDisposable {
  request(path: string, init?: RequestInit, remote?: string): Promise<Response>;
  json(path: string, body: unknown, method?: string): Promise<Response>;
  advance(ms: number): void;
  store: TrackerStore;
  activity: ActivityLog;
  kv: Deno.Kv;
  dir: string;
}

/** Builds a tracker app on a fresh KV file. */
export async function testTracker(
  opts: { maxUpload?: number; peerTtlMs?: number } = {},
): Promise<TestTracker> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-test-" });
  const kv = await Deno.openKv(`${dir}/tracker.kv`);
  let now = Date.UTC(2026, 0, 1);
  const clock = () => now;
  const activity = await ActivityLog.open(kv, { path: `${dir}/activity.jsonl`, clock });
  const store = new TrackerStore(kv, activity, clock);
  await store.load();
  const app = createTrackerApp({
    store,
    activity,
    metrics: new Metrics(),
    config: {
      peerTtlMs: opts.peerTtlMs ?? 60_000,
      maxUpload: opts.maxUpload ?? 8 * 1024 * 1024,
      version: "test",
    },
  });
  let closed = false;
  const request = (path: string, init?: RequestInit, remote = "127.0.0.9") =>
    Promise.resolve(
      app.request(path, init, {
        remoteAddr: { transport: "tcp", hostname: remote, port: 40000 },
      }),
    );
  return {
    request,
    json: (path, body, method = "POST") =>
      request(path, {
        method,
        body: typeof body === "string" ? body : JSON.stringify(body),
        headers: { "content-type": "application/json" },
      }),
    advance: (ms) => {
      now += ms;
    },
    store,
    activity,
    kv,
    dir,
    async [Symbol.asyncDispose]() {
      if (!closed) {
        closed = true;
        await activity.close();
        try {
          kv.close();
        } catch {
          // The test closed it on purpose.
        }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

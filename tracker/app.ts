/**
 * The tracker's HTTP API as a Hono app, built from its dependencies so that tests
 * can drive it in memory with `app.request()` or behind a real socket. This file
 * wires the rooms and owns what every route shares: request metrics, activity
 * records for queries and errors, and the JSON error answers.
 *
 * Every request passes `guard.ts` first: the request-rate limit of its address, then
 * on a protected network the proof of the network key (all routes but `/health`).
 *
 * Routes: `GET /health`, `GET /metrics`, `GET /activity` (here); `POST|GET /peers`,
 * `GET|DELETE /peers/{id}` (`routes_peers.ts`); `POST /payloads` (`upload.ts`);
 * `GET /payloads`, `GET|PUT /payloads/{id}`, `GET /payloads/{id}/peers`,
 * `POST /payloads/{id}/have`, `GET /payloads/{id}/chunks/{index}`,
 * `GET /payloads/{id}/content` (`routes_payloads.ts`); `GET /search?q=` (also at
 * `/payloads/search`, `routes_search.ts`).
 *
 * @module
 */
import { Hono } from "hono";
import { zValidator } from "@hono/zod-validator";
import type { z } from "zod";
import { ActivityQuery } from "../proto/activity.ts";
import { IntegrityError, NotFoundError, P2pError } from "../proto/errors.ts";
import type { HealthResponse } from "../proto/tracker.ts";
import { isOpenNetwork } from "../proto/network_key.ts";
import { errorHandler, listingHook } from "../lib/http_api.ts";
import { rateLimit, requireMembership, TooManyRequestsError } from "./guard.ts";
import type { TrackerDeps, TrackerEnv } from "./deps.ts";
import { peerRoutes } from "./routes_peers.ts";
import { payloadRoutes } from "./routes_payloads.ts";
import { searchRoutes } from "./routes_search.ts";
import { uploadRoutes } from "./upload.ts";

export type { TrackerConfig, TrackerDeps, TrackerEnv } from "./deps.ts";

/** Routes whose requests are not activity records themselves. */
const QUIET_ROUTES = new Set(["/health", "/metrics", "/activity"]);
/** What a failure that is not the caller's doing (storage, bugs) answers. */
const UNAVAILABLE = {
  status: 503,
  code: "unavailable",
  prefix: "Tracker cannot serve this now: ",
} as const;

/** Builds the tracker's Hono app. */
export function createTrackerApp(deps: TrackerDeps): Hono<TrackerEnv> {
  const { store, activity, metrics, config } = deps;
  const app = new Hono<TrackerEnv>();

  app.use(async (c, next) => {
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    metrics.count(c.req.method, route, c.res.status);
    if (c.req.method === "GET" && c.res.status < 400 && !QUIET_ROUTES.has(route)) {
      // Peers poll: a route asked again and again by one address costs a few records.
      const from = c.env?.remoteAddr?.hostname ?? "";
      activity.recordFolded("query", { route, path: c.req.path, status: c.res.status, from }, [
        "route",
        "from",
      ]);
    }
  });
  app.use(rateLimit(deps.rate));
  if (config.networkKey && !isOpenNetwork(config.networkKey)) {
    app.use(requireMembership(config.networkKey, deps.replay));
  }

  app.get("/health", (c) => {
    const res: z.infer<typeof HealthResponse> = { status: "ok", version: config.version };
    return c.json(res);
  });

  app.get("/metrics", async (c) => {
    const s = await store.stats();
    const text = metrics.render({
      p2p_tracker_live_peers: { help: "Peers registered and not expired.", value: s.livePeers },
      p2p_tracker_payloads: { help: "Payloads known to the tracker.", value: s.payloads },
      p2p_tracker_stored_bytes: {
        help: "Bytes of the payloads whose chunks the tracker stores.",
        value: s.storedBytes,
      },
      p2p_tracker_peer_writes: {
        help: "Registrations, heartbeats and removals committed (or refused by KV's checks).",
        value: store.commits.stats.writes,
      },
      p2p_tracker_peer_commits: {
        help: "KV commits that carried them (heartbeats arriving together share one).",
        value: store.commits.stats.commits,
      },
    });
    return c.text(text, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  app.get(
    "/activity",
    zValidator("query", ActivityQuery, listingHook("invalid_query", "Query is invalid: ")),
    async (c) => c.json(await activity.query(c.req.valid("query"))),
  );

  app.route("/peers", peerRoutes(deps));
  app.route("/payloads", uploadRoutes(deps));
  app.route("/payloads", payloadRoutes(deps));
  app.route("/search", searchRoutes(deps));

  const answerError = errorHandler((err, mapped, c) => {
    // A flood of refusals costs one record per run, not one per request.
    if (err instanceof TooManyRequestsError && !err.report) return;
    if (!mapped.expected) {
      console.error(`tracker: ${c.req.method} ${c.req.path} failed: ${err.stack ?? err}`);
    }
    const fields = {
      method: c.req.method,
      path: c.req.path,
      status: mapped.status,
      code: mapped.body.error.code,
      message: mapped.body.error.message,
      from: c.env?.remoteAddr?.hostname ?? "",
    };
    // A flood of one refusal from one address costs a few records.
    if (mapped.expected) activity.recordFolded("error", fields, ["from", "code"]);
    else activity.record("storage.error", fields);
  }, UNAVAILABLE);
  app.notFound((c) =>
    answerError(new NotFoundError("not_found", `No route for '${c.req.method} ${c.req.path}'`), c)
  );
  // A stored chunk that fails its hash is the tracker's storage failing, not a bad gateway.
  app.onError(async (err, c) => {
    const res = await answerError(
      err instanceof IntegrityError
        ? new P2pError("unavailable", err.message, { cause: err })
        : err,
      c,
    );
    if (err instanceof TooManyRequestsError) {
      res.headers.set("retry-after", String(err.retryAfterSeconds));
    }
    return res;
  });

  return app;
}

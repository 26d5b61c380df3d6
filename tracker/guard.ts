/**
 * What every tracker request passes before its route: the request-rate limit of its
 * address, then, on a protected network, the proof of the network key
 * (`proto/tracker_auth.ts`): a well-formed `Authorization: P2P-HMAC …` header, a time
 * within ±60 s, a proof that verifies over the method, path and query, body hash,
 * time and nonce, and a nonce not seen within the window. The body is then checked
 * against the hash it declared as it streams in: a mismatch fails its last read with
 * `401 body_mismatch`, before the route acts on it.
 *
 * `GET /health` stays open (it says "ok" and the version, nothing about the network),
 * so that a load balancer or a person with curl can see that a tracker runs there.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { P2pError, RateLimitedError, UnauthorizedError } from "../proto/errors.ts";
import {
  EMPTY_SHA256,
  parseRequestAuth,
  REQUEST_WINDOW_MS,
  verifyRequestAuth,
} from "../proto/tracker_auth.ts";
import type { TrackerEnv } from "./deps.ts";
import type { RequestRate } from "../lib/request_rate.ts";
import type { ReplayCache } from "./replay_cache.ts";

/** Paths any caller may ask without a proof. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(["/health"]);

/** A `429` with the seconds to wait; `report` is false for the repeats of a run. */
export class TooManyRequestsError extends RateLimitedError {
  readonly retryAfterSeconds: number;
  readonly report: boolean;
  constructor(message: string, retryAfterSeconds: number, report: boolean) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
    this.report = report;
  }
}

/** Refuses a request over its address's rate with `429 rate_limited` and `Retry-After`. */
export function rateLimit(rate: RequestRate): MiddlewareHandler<TrackerEnv> {
  return async (c, next) => {
    const address = c.env?.remoteAddr?.hostname ?? "";
    const d = rate.take(address);
    if (!d.ok) {
      throw new TooManyRequestsError(
        `Too many requests from '${address}': retry in ${d.retryAfterSeconds} s`,
        d.retryAfterSeconds,
        d.firstRefusal,
      );
    }
    await next();
  };
}

/** Refuses a request without a valid proof of `key` (see the module doc). */
export function requireMembership(
  key: Uint8Array,
  replay: ReplayCache,
  clock: () => number = Date.now,
): MiddlewareHandler<TrackerEnv> {
  return async (c, next) => {
    if (OPEN_PATHS.has(c.req.path)) return await next();
    const auth = parseRequestAuth(c.req.header("authorization"));
    if (!auth) {
      throw new UnauthorizedError(
        "membership_required",
        "This tracker serves members of its network only: send the proof of the network " +
          "key (Authorization: P2P-HMAC ts=…, nonce=…, sha256=…, proof=…)",
      );
    }
    const now = clock();
    if (Math.abs(auth.ts - now) > REQUEST_WINDOW_MS) {
      throw new UnauthorizedError(
        "stale_request",
        `Request time '${auth.ts}' is more than ${REQUEST_WINDOW_MS / 1000} s from the ` +
          `tracker's clock (${now}): check the clocks`,
      );
    }
    const url = new URL(c.req.url);
    if (!await verifyRequestAuth(key, c.req.method, url.pathname + url.search, auth)) {
      throw new UnauthorizedError(
        "bad_proof",
        "Request proof does not verify: another network's key, or a changed request",
      );
    }
    const seen = replay.remember(`n:${auth.nonce}`, auth.ts + REQUEST_WINDOW_MS + 1);
    if (seen === "seen") {
      throw new UnauthorizedError("replayed_request", `Request nonce '${auth.nonce}' was used`);
    }
    if (seen === "full") {
      throw new P2pError("busy", "Tracker is at its limit of recent requests; retry soon", {
        status: 503,
      });
    }
    const body = c.req.raw.body;
    if (body === null) {
      if (auth.sha256 !== EMPTY_SHA256) throw bodyMismatch();
    } else {
      c.req.raw = new Request(c.req.raw, {
        body: body.pipeThrough(checkSha256(auth.sha256)),
        // @ts-ignore: `duplex` is required by fetch's Request for a streamed body.
        duplex: "half",
      });
    }
    await next();
  };
}

function bodyMismatch(): UnauthorizedError {
  return new UnauthorizedError(
    "body_mismatch",
    "Request body does not match the SHA-256 its proof covers",
  );
}

/** Passes bytes through, and fails at the end when their SHA-256 is not `expected`. */
export function checkSha256(expected: string): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  return new TransformStream({
    transform(chunk, out) {
      hash.update(chunk);
      out.enqueue(chunk);
    },
    flush() {
      if (hash.digest("hex") !== expected) throw bodyMismatch();
    },
  });
}

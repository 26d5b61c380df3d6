/**
 * The peer's control API under `/_p2p/`, served on loopback behind the peer's main
 * HTTP server: what the CLI client commands (`put`, `get`, `ls`, `rm`, `where`,
 * `peers`, `status`, `log`, `discover`) and the web app call. Its contract is
 * `proto/control.ts`: every answer here is built as one of its types. Long operations
 * answer with NDJSON streams of events, one JSON object a line, ending with
 * `{"type":"done",…}` or `{"type":"error",…}`; `/_p2p/events` streams activity as
 * server-sent events. Errors are `P2pError`s, answered by `lib/http_api.ts`'s
 * `errorHandler()`.
 *
 * A payload or a peer in a path or query is a reference that `control_ids.ts` resolves
 * (whole id, 6+ hex digits, or unique name); one payload's description and removal are
 * `control_payloads.ts`; the streamed answers, and the download watches that let a
 * closed answer or `DELETE /_p2p/downloads/:ref` cancel a download, `control_stream.ts`.
 * What the owner puts or gets here is pinned in the store (`ls` tells it from replicas).
 *
 * Every request needs the owner's token (`peer/control_token.ts`): as
 * `Authorization: Bearer <token>`, or as the `p2p_token` cookie (HttpOnly,
 * SameSite=Strict) that `/_p2p/login` sets, from a one-time code (`GET ?once=`) or
 * the token itself (`POST`, the web app's form). Nothing else is open. A request a
 * page of another origin sends (`Origin`, `Sec-Fetch-Site`) is refused first, login
 * included (`peer/origin_guard.ts`). Each refusal (401, 403) is an activity record
 * `control.refused`, through `log.refused()`: a flood of them costs a few records a
 * minute (5 of one address and code, then one with the count).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { create as contentDisposition } from "content-disposition";
import { typeMatches } from "../proto/activity.ts";
import {
  type ActivityPage,
  ActivityRecord,
  type CancelAnswer,
  ContentQuery,
  DiscoverRequest,
  type DiscoveryReport,
  type DownloadProgress,
  type DownloadResult,
  type LoginLinkAnswer,
  LoginQuery,
  LoginRequest,
  LogQuery,
  type NetworkPayloadsAnswer,
  type PayloadInfo,
  PayloadRef,
  type PayloadsAnswer,
  type PeersAnswer,
  type PutEvent,
  type PutProgress,
  PutQuery,
  type PutResult,
  RemoveQuery,
  type StatusAnswer,
  type StoredPayload,
  type WhereAnswer,
} from "../proto/control.ts";
import {
  type DiscoverDone,
  type DiscoverProgress,
  DiscoverQuery,
  parseRange,
  type ScanProgress,
} from "../proto/discovery.ts";
import {
  errorMessage,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  P2pError,
  UnauthorizedError,
} from "../proto/errors.ts";
import type { KnownPeer } from "./peer_table.ts";
import {
  errorHandler,
  limitBody,
  notFoundHandler,
  param,
  query,
  readBody,
  validate,
} from "../lib/http_api.ts";
import {
  activityEvents,
  download,
  DownloadWatchers,
  ndjson,
  untilAborted,
} from "./control_stream.ts";
import { resolvePayload, resolvePeer } from "./control_ids.ts";
import { mountSearchRoutes } from "./search/control_routes.ts";
import { payloadInfo, removePayload } from "./control_payloads.ts";
import {
  assertLocalClient,
  type LinkingStore,
  putFromFile,
  saveToFile,
} from "./control_local_files.ts";
import { ControlAuth, TOKEN_COOKIE } from "./control_token.ts";
import { originProblem, requestOrigin } from "./origin_guard.ts";

/** Largest `POST /_p2p/discover` body, in bytes. */
const MAX_DISCOVER_BODY = 4096;
/** Largest `POST /_p2p/login` body, in bytes. */
const MAX_LOGIN_BODY = 1024;
/** How long the web app's cookie lasts, in seconds (a year: the token itself stays). */
const COOKIE_MAX_AGE_S = 365 * 24 * 3600;

/** What the control API needs of a running peer. */
export interface ControlNode {
  /** Aborts when the peer stops: open streams end. */
  readonly signal: AbortSignal;
  readonly store: {
    list(): StoredPayload[];
    payload(payloadId: string): StoredPayload | undefined;
    getManifest(payloadId: string): { chunks: string[] } | undefined;
    onChunk(listener: (payloadId: string, index: number) => void): () => void;
    exportStream(payloadId: string): ReadableStream<Uint8Array>;
    /** Marks a payload as the owner's (put or got here). */
    pin(payloadId: string): Promise<void>;
    /** Removes a payload's manifest and its file; resolves with the bytes freed. */
    remove(payloadId: string): Promise<number>;
    /** Bytes of the chunks held in payload files. */
    readonly usedBytes: number;
    /** Most bytes the store may hold. */
    capacity(): number;
  } & Partial<LinkingStore>;
  readonly log: {
    query(q: { since?: number; limit?: number; type?: string }): ActivityPage;
    follow(listener: (record: ActivityRecord) => void): () => void;
    record(type: string, fields?: Record<string, unknown>): unknown;
    /** Records a refusal, folding a flood of the same one (`PeerLog.refused()`). */
    refused(type: string, fields?: Record<string, unknown>): unknown;
  };
  readonly table: { list(): KnownPeer[] };
  status(): StatusAnswer;
  put(
    source: ReadableStream<Uint8Array>,
    name?: string,
    onProgress?: (e: PutProgress) => void,
  ): Promise<PutResult>;
  /**
   * Downloads a payload; a listener with a `signal` stops watching when it aborts, which
   * cancels the download when nobody else waits for it (`peer/downloads.ts`).
   */
  get(
    payloadId: string,
    onProgress?: ((p: DownloadProgress) => void) & { signal?: AbortSignal },
  ): Promise<DownloadResult>;
  /** Removes a payload here and from the tracker's holders; resolves with the bytes freed. */
  remove(payloadId: string): Promise<number>;
  where(payloadId: string): Promise<WhereAnswer>;
  /** Another peer's records; checked here, as anything another peer sends. */
  remoteLog(peerId: string, since?: number, limit?: number, type?: string): Promise<unknown[]>;
  networkPayloads(): Promise<NetworkPayloadsAnswer>;
  discover(range?: string, onProgress?: (p: ScanProgress) => void): Promise<DiscoveryReport>;
}

/** Options of `createControlApp()`. */
export interface ControlAppOptions {
  /** The owner's token and the one-time login codes: every request is checked with it. */
  auth: ControlAuth;
  /** Period of the `: ping` comment on `/_p2p/events` (default 15 s). */
  pingMs?: number;
}

/** Builds the control API of a node. */
export function createControlApp(node: ControlNode, opts: ControlAppOptions): Hono {
  const app = new Hono();
  const { auth } = opts;
  const watchers = new DownloadWatchers();
  const refuse = (c: Context, err: P2pError) => {
    // Folded: a flood of requests without the token costs a few records a minute.
    node.log.refused("control.refused", {
      status: err.status,
      code: err.code,
      method: c.req.method,
      path: c.req.path,
      from: c.req.header("x-forwarded-for")?.split(",").at(-1)?.trim() ?? "loopback",
    });
    return err;
  };

  // The origin first (login included: no login CSRF), then the token.
  app.use(async (c, next) => {
    const problem = originProblem(c.req.raw.headers, requestOrigin(c.req.raw.headers));
    if (problem) throw refuse(c, new ForbiddenError("forbidden_origin", problem));
    const open = c.req.path === "/_p2p/login";
    if (!open && !auth.accepts(ControlAuth.shown(c.req.raw.headers))) {
      throw refuse(
        c,
        new UnauthorizedError(
          "unauthorized",
          "The control API needs the owner's token (Authorization: Bearer, or log in at /_p2p/login)",
        ),
      );
    }
    await next();
  });

  app.get("/_p2p/login", (c) => {
    const { once } = query(c, LoginQuery);
    const token = auth.redeem(once);
    if (!token) {
      throw refuse(
        c,
        new UnauthorizedError(
          "login_expired",
          "This login link was used already or has expired; ask the peer's owner for a new one",
        ),
      );
    }
    setTokenCookie(c, token);
    c.header("cache-control", "no-store");
    return c.redirect("/", 303);
  });

  app.post(
    "/_p2p/login",
    limitBody(
      MAX_LOGIN_BODY,
      () =>
        new P2pError("too_large", `Request body is over ${MAX_LOGIN_BODY} bytes`, { status: 413 }),
    ),
    async (c) => {
      let body: unknown;
      try {
        body = JSON.parse(await readBody(() => c.req.text()));
      } catch (cause) {
        if (cause instanceof P2pError) throw cause;
        throw new InvalidInputError("invalid_json", "Body is not JSON", { cause });
      }
      const { token } = validate(LoginRequest, body, "invalid_body");
      if (!auth.accepts(token.trim())) {
        throw refuse(c, new UnauthorizedError("wrong_token", "This is not the peer's token"));
      }
      setTokenCookie(c, token.trim());
      return c.body(null, 204);
    },
  );

  app.post("/_p2p/login-links", (c) => {
    const { code, expiresAt } = auth.loginLink();
    const answer: LoginLinkAnswer = { path: `/_p2p/login?once=${code}`, expiresAt };
    return c.json(answer);
  });

  app.post("/_p2p/logout", (c) => {
    setTokenCookie(c, "", 0);
    return c.body(null, 204);
  });

  app.get("/_p2p/status", (c) => {
    const store = { usedBytes: node.store.usedBytes, capacityBytes: node.store.capacity() };
    return c.json({ ...node.status(), store } satisfies StatusAnswer);
  });

  app.get("/_p2p/peers", (c) => {
    const answer: PeersAnswer = {
      peers: node.table.list().map((p) => ({ ...p, stale: p.failures > 0 })),
    };
    return c.json(answer);
  });

  app.post(
    "/_p2p/discover",
    limitBody(
      MAX_DISCOVER_BODY,
      () =>
        new P2pError("too_large", `Request body is over ${MAX_DISCOVER_BODY} bytes`, {
          status: 413,
        }),
    ),
    async (c) => {
      const text = await readBody(() => c.req.text());
      let body: unknown = {};
      if (text.trim() !== "") {
        try {
          body = JSON.parse(text);
        } catch (cause) {
          throw new InvalidInputError("invalid_json", "Body is not JSON", { cause });
        }
      }
      const { range } = validate(DiscoverRequest, body, "invalid_body");
      if (range !== undefined) {
        try {
          parseRange(range);
        } catch (err) {
          if (!(err instanceof RangeError || err instanceof TypeError)) throw err;
          throw new InvalidInputError("invalid_range", err.message, { cause: err });
        }
      }
      if (!query(c, DiscoverQuery).progress) {
        return c.json(await node.discover(range) satisfies DiscoveryReport);
      }
      // NDJSON: progress lines (at most every 100 ms, and the first and last), then done.
      return ndjson<DiscoverProgress | DiscoverDone>(c, async (send) => {
        let last = 0;
        const report = await node.discover(range, (p) => {
          const now = performance.now();
          if (p.phase === "probing" && p.probed < p.total && now - last < 100) return;
          last = now;
          send({ type: "progress", ...p });
        });
        send({ type: "done", report });
      });
    },
  );

  app.get("/_p2p/payloads", (c) => {
    const answer: PayloadsAnswer = { payloads: node.store.list() };
    return c.json(answer);
  });

  app.get(
    "/_p2p/network/payloads",
    async (c) => c.json(await node.networkPayloads() satisfies NetworkPayloadsAnswer),
  );

  mountSearchRoutes(app, node.store, (ref) => resolvePayload(node, ref));

  app.get("/_p2p/events", (c) => activityEvents(c, node, opts.pingMs));

  app.post("/_p2p/payloads", (c) => {
    const { name } = query(c, PutQuery);
    const body = c.req.raw.body;
    if (!body) throw new InvalidInputError("empty_payload", "Payload is empty");
    return ndjson<PutEvent>(c, async (send) => {
      const res = await node.put(body, name, send);
      await node.store.pin(res.payloadId);
      send({ type: "done", ...res });
    });
  });

  app.get("/_p2p/payloads/:id", async (c) => {
    return c.json(await payloadInfo(node, payloadRef(c)) satisfies PayloadInfo);
  });

  app.delete("/_p2p/payloads/:id", async (c) => {
    const { force } = query(c, RemoveQuery);
    return c.json(await removePayload(node, payloadRef(c), force === "1" || force === "true"));
  });

  app.post("/_p2p/downloads/:id", async (c) => {
    return download(c, node, await resolvePayload(node, payloadRef(c)), watchers);
  });

  // A client on this machine names files by path: each byte written once (issue 13).
  app.post("/_p2p/downloads/:id/to-file", async (c) => {
    assertLocalClient(c, refuse);
    const store = node.store;
    if (!store.linkTo || !store.finishLink || !store.abandonLink) {
      throw new NotFoundError("not_found", "This peer cannot save to a file");
    }
    return saveToFile(
      c,
      node,
      store as LinkingStore,
      await resolvePayload(node, payloadRef(c)),
      watchers,
    );
  });

  app.post("/_p2p/payloads/from-file", (c) => {
    assertLocalClient(c, refuse);
    return putFromFile(c, node);
  });

  app.delete("/_p2p/downloads/:id", async (c) => {
    const payloadId = await resolvePayload(node, payloadRef(c));
    return c.json({ payloadId, cancelled: watchers.cancel(payloadId) } satisfies CancelAnswer);
  });

  app.get("/_p2p/payloads/:id/content", async (c) => {
    const id = await resolvePayload(node, payloadRef(c), false);
    const p = node.store.payload(id);
    if (!p) throw new NotFoundError("unknown_payload", `No payload '${id}' here; get it first`);
    if (!p.complete) {
      throw new P2pError(
        "incomplete",
        `The payload is incomplete here (${p.held} of ${p.chunks} chunks); get it first`,
        { status: 409 },
      );
    }
    c.header("content-type", "application/octet-stream");
    // Bytes anyone may have shared, on the owner's origin: never sniffed or run as a page.
    c.header("x-content-type-options", "nosniff");
    c.header("content-security-policy", "sandbox");
    c.header("content-length", String(p.size));
    if (query(c, ContentQuery).download !== undefined) {
      const base = (p.name ?? "").split(/[\\/]/).pop() || `${id.slice(0, 16)}.bin`;
      c.header("content-disposition", contentDisposition(base));
    }
    return c.body(node.store.exportStream(id));
  });

  app.get("/_p2p/payloads/:id/where", async (c) => {
    // An unknown payload is the node's NotFoundError (404); the rest as errorHandler maps it.
    const payloadId = await resolvePayload(node, payloadRef(c));
    return c.json({ payloadId, ...await node.where(payloadId) } satisfies WhereAnswer);
  });

  app.get("/_p2p/log", async (c) => {
    const q = query(c, LogQuery);
    const peer = q.peer === undefined ? undefined : resolvePeer(node, q.peer);
    if (peer !== undefined && peer !== node.status().peerId) {
      let raw: unknown[];
      try {
        raw = await node.remoteLog(peer, q.since, q.limit, q.type);
      } catch (err) {
        throw remoteLogError(err);
      }
      // Filtered here too, for peers of older versions that ignore `type`.
      const records = raw.flatMap((r) => {
        const parsed = ActivityRecord.safeParse(r);
        return parsed.success && typeMatches(parsed.data.type, q.type) ? [parsed.data] : [];
      });
      const answer: ActivityPage = { records, next: records.at(-1)?.id ?? null };
      return c.json(answer);
    }
    if (q.follow === "1" || q.follow === "true") {
      return ndjson<ActivityRecord>(c, (send, signal) => {
        for (const r of node.log.query(q).records) send(r);
        const stop = node.log.follow((r) => {
          if (typeMatches(r.type, q.type)) send(r);
        });
        return untilAborted(AbortSignal.any([signal, node.signal])).finally(stop);
      });
    }
    return c.json(node.log.query(q) satisfies ActivityPage);
  });

  app.notFound(notFoundHandler());
  app.onError(errorHandler((err, mapped, c) => {
    if (!mapped.expected) {
      node.log.record("error", { during: `${c.req.method} ${c.req.path}`, message: err.message });
    }
  }));
  return app;
}

/**
 * Sets the token cookie: HttpOnly (no script reads it), SameSite=Strict (no other
 * site's page or link sends it), on the whole origin, Secure over HTTPS.
 */
function setTokenCookie(c: Context, token: string, maxAge = COOKIE_MAX_AGE_S): void {
  const secure = requestOrigin(c.req.raw.headers).startsWith("https:") ? "; Secure" : "";
  c.header(
    "set-cookie",
    `${TOKEN_COOKIE}=${token}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure}`,
  );
}

/** The `:id` of a payload route: an id, a prefix of one, or a name (`control_ids.ts`). */
function payloadRef(c: Context): string {
  return param(c, "id", PayloadRef, "Payload");
}

/**
 * What a failed `remoteLog()` answers: errors with a status as they are (an unknown
 * peer is the node's NotFoundError, 404); anything else means the peer could not be
 * read (502, with the error's code when it has one).
 */
function remoteLogError(err: unknown): P2pError {
  if (err instanceof P2pError && err.status !== undefined) return err;
  return new P2pError(
    err instanceof P2pError ? err.code : "peer_unreachable",
    errorMessage(err),
    { status: 502, cause: err },
  );
}

/**
 * A typed client of a peer's control API (`/_p2p/…`, see `proto/control.ts`): every
 * answer is parsed with its schema, a non-2xx answer becomes a `ControlError` carrying
 * the answer's `code` and `status`, a peer that cannot be reached a
 * `PeerUnreachableError`, and NDJSON streams are read line by line, each line parsed.
 * The CLI drives the local peer with it; a peer reads other peers' payload lists with it.
 * Every request carries the owner's token when one is given (`Authorization: Bearer`).
 *
 * ```ts
 * import { ControlClient, PeerUnreachableError } from "./control_client.ts";
 *
 * const client = new ControlClient("http://127.0.0.1:1", { timeoutMs: 1000 });
 * try {
 *   await client.status();
 * } catch (err) {
 *   console.assert(err instanceof PeerUnreachableError && err.status === 502);
 * }
 * ```
 *
 * @module
 */
import type { z } from "zod";
import {
  ActivityPage,
  ActivityRecord,
  CancelAnswer,
  type ChunkEvent,
  DiscoverEvent,
  type DiscoverProgress,
  DiscoveryReport,
  type DownloadDoneEvent,
  DownloadEvent,
  type ErrorEvent,
  LoginLinkAnswer,
  type LogQuery,
  NetworkPayloadsAnswer,
  PayloadInfo,
  PayloadsAnswer,
  PeersAnswer,
  type ProgressEvent,
  type PutDoneEvent,
  PutEvent,
  type PutProgress,
  RemoveAnswer,
  StatusAnswer,
  WhereAnswer,
} from "../proto/control.ts";
import { ErrorBody } from "../proto/error_body.ts";
import {
  type ErrorStatus,
  formatZodError,
  P2pError,
  PeerTimeoutError,
  ProtocolError,
} from "../proto/errors.ts";
import { jsonLines } from "../proto/lines.ts";
import { postStream } from "../lib/stream_post.ts";

/**
 * A control API answered with an error (its `code`, and its HTTP status as `status`
 * when it is one this program maps to), or a stream of events ended with an `error`
 * event (its `code`, no status).
 */
export class ControlError extends P2pError {
  /** The HTTP status of the answer; undefined for an `error` event in a stream. */
  readonly httpStatus?: number;
  constructor(code: string, message: string, httpStatus?: number, options?: ErrorOptions) {
    super(code, message, {
      ...options,
      ...(httpStatus !== undefined && isErrorStatus(httpStatus) ? { status: httpStatus } : {}),
    });
    if (httpStatus !== undefined) this.httpStatus = httpStatus;
  }
}

/** Nothing answers at the control API's URL (refused, reset, no route). Status 502. */
export class PeerUnreachableError extends P2pError {
  /** The base URL that could not be reached. */
  readonly url: string;
  constructor(url: string, options?: ErrorOptions) {
    super("peer_unreachable", `No peer answers at ${url}`, { ...options, status: 502 });
    this.url = url;
  }
}

const ERROR_STATUSES: ReadonlySet<number> = new Set<ErrorStatus>([
  400,
  401,
  403,
  404,
  405,
  408,
  409,
  413,
  415,
  429,
  431,
  500,
  502,
  503,
  504,
  505,
  508,
]);

/** Whether an answer's status is one of the statuses this program's errors map to. */
function isErrorStatus(status: number): status is ErrorStatus {
  return ERROR_STATUSES.has(status);
}

/** Options of a `ControlClient`. */
export interface ControlClientOptions {
  /** Aborts every call of this client (a peer stopping, say). */
  signal?: AbortSignal;
  /** Time limit of each JSON call (not of streams), in ms. */
  timeoutMs?: number;
  /** The peer's control token, sent as `Authorization: Bearer` on every request. */
  token?: string;
}

/** Options of one call. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** What `put()` takes besides the bytes. */
export interface PutOptions extends CallOptions {
  /** The payload's name. */
  name?: string;
  /** The body's length, when known (sent as `content-length`). */
  size?: number;
  /** Called with each event before the last. */
  onEvent?: (e: PutProgress) => void;
}

/** What `download()` takes. */
export interface DownloadOptions extends CallOptions {
  /** Called with each event before the last. */
  onEvent?: (e: ProgressEvent | ChunkEvent) => void;
}

/** A query of `log()`; `follow` is `followLog()`'s. */
export type LogOptions = Partial<Omit<LogQuery, "follow">>;

/** A client of one peer's control API. */
export class ControlClient {
  /** The base URL, without a trailing slash (`http://127.0.0.1:5805`). */
  readonly url: string;
  readonly #opts: ControlClientOptions;

  constructor(url: string, opts: ControlClientOptions = {}) {
    this.url = url.replace(/\/+$/, "");
    this.#opts = opts;
  }

  /** `GET /_p2p/status`. */
  status(opts?: CallOptions): Promise<StatusAnswer> {
    return this.#json("/_p2p/status", StatusAnswer, opts);
  }

  /** `GET /_p2p/peers`. */
  peers(opts?: CallOptions): Promise<PeersAnswer> {
    return this.#json("/_p2p/peers", PeersAnswer, opts);
  }

  /** `GET /_p2p/payloads`: the payloads in the peer's store. */
  payloads(opts?: CallOptions): Promise<PayloadsAnswer> {
    return this.#json("/_p2p/payloads", PayloadsAnswer, opts);
  }

  /** `GET /_p2p/payloads/:ref`: the payload an id, a prefix of one or a name names. */
  payload(ref: string, opts?: CallOptions): Promise<PayloadInfo> {
    return this.#json(`/_p2p/payloads/${encodeURIComponent(ref)}`, PayloadInfo, opts);
  }

  /** `DELETE /_p2p/payloads/:ref`: removes the local copy (`force`: even a last copy). */
  remove(ref: string, force = false, opts?: CallOptions): Promise<RemoveAnswer> {
    const q = force ? "?force=1" : "";
    return this.#json(`/_p2p/payloads/${encodeURIComponent(ref)}${q}`, RemoveAnswer, opts, {
      method: "DELETE",
    });
  }

  /** `DELETE /_p2p/downloads/:ref`: cancels the peer's download of a payload. */
  cancelDownload(ref: string, opts?: CallOptions): Promise<CancelAnswer> {
    return this.#json(`/_p2p/downloads/${encodeURIComponent(ref)}`, CancelAnswer, opts, {
      method: "DELETE",
    });
  }

  /** `GET /_p2p/network/payloads`: the payloads the peer knows on the network. */
  networkPayloads(opts?: CallOptions): Promise<NetworkPayloadsAnswer> {
    return this.#json("/_p2p/network/payloads", NetworkPayloadsAnswer, opts);
  }

  /** `GET /_p2p/payloads/:id/where`: who holds which chunk positions. */
  where(payloadId: string, opts?: CallOptions): Promise<WhereAnswer> {
    return this.#json(`/_p2p/payloads/${encodeURIComponent(payloadId)}/where`, WhereAnswer, opts);
  }

  /**
   * `POST /_p2p/discover`: the peer scans `range` (none: its interfaces' subnets).
   * With `onProgress`, the answer streams how far the scan is (`?progress=1`).
   */
  async discover(
    range?: string,
    opts: CallOptions & { onProgress?: (p: DiscoverProgress) => void } = {},
  ): Promise<DiscoveryReport> {
    const init = {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(range === undefined ? {} : { range }),
    };
    if (!opts.onProgress) return await this.#json("/_p2p/discover", DiscoveryReport, opts, init);
    const res = await this.#fetch("/_p2p/discover?progress=1", opts.signal, false, init);
    for await (const e of this.#lines(res, DiscoverEvent)) {
      if (e.type === "done") return e.report;
      if (e.type === "error") throw streamError(e);
      opts.onProgress(e);
    }
    throw endedEarly();
  }

  /** `POST /_p2p/login-links`: a new one-time link that logs a browser in to the web app. */
  loginLink(opts?: CallOptions): Promise<LoginLinkAnswer> {
    return this.#json("/_p2p/login-links", LoginLinkAnswer, opts, { method: "POST" });
  }

  /** `GET /_p2p/log`: a page of the peer's activity, or of another peer's (`peer`). */
  log(query: LogOptions = {}, opts?: CallOptions): Promise<ActivityPage> {
    return this.#json(`/_p2p/log?${logParams(query)}`, ActivityPage, opts);
  }

  /** `GET /_p2p/log?follow=1`: the peer's records (the newest first), then each new one. */
  async *followLog(query: LogOptions = {}, opts?: CallOptions): AsyncGenerator<ActivityRecord> {
    const q = logParams(query);
    q.set("follow", "1");
    const res = await this.#fetch(`/_p2p/log?${q}`, opts?.signal, false);
    yield* this.#lines(res, ActivityRecord);
  }

  /**
   * `POST /_p2p/payloads`: stores `body` on the peer, which announces and replicates
   * it; resolves with the `done` event. Sent with `postStream()` (node:http), not fetch.
   */
  async put(body: ReadableStream<Uint8Array>, opts: PutOptions = {}): Promise<PutDoneEvent> {
    const q = opts.name === undefined ? "" : `?name=${encodeURIComponent(opts.name)}`;
    const res = await this.#upload(`/_p2p/payloads${q}`, body, opts);
    for await (const e of this.#lines(res, PutEvent)) {
      if (e.type === "done") return e;
      if (e.type === "error") throw streamError(e);
      opts.onEvent?.(e);
    }
    throw endedEarly();
  }

  /** `POST /_p2p/downloads/:id`: the peer downloads a payload; resolves with the `done` event. */
  async download(payloadId: string, opts: DownloadOptions = {}): Promise<DownloadDoneEvent> {
    const path = `/_p2p/downloads/${encodeURIComponent(payloadId)}`;
    const res = await this.#fetch(path, opts.signal, false, { method: "POST" });
    for await (const e of this.#lines(res, DownloadEvent)) {
      if (e.type === "done") return e;
      if (e.type === "error") throw streamError(e);
      opts.onEvent?.(e);
    }
    throw endedEarly();
  }

  /** `GET /_p2p/payloads/:id/content`: the bytes of a complete payload, as they stream. */
  async content(
    payloadId: string,
    opts: CallOptions & { download?: boolean } = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const path = `/_p2p/payloads/${encodeURIComponent(payloadId)}/content` +
      (opts.download ? "?download=1" : "");
    const res = await this.#fetch(path, opts.signal, false);
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  /** The `Authorization` field of every request, when there is a token. */
  #auth(): Record<string, string> {
    return this.#opts.token === undefined ? {} : { authorization: `Bearer ${this.#opts.token}` };
  }

  /** A JSON answer parsed with `schema`. */
  async #json<T extends z.ZodType>(
    path: string,
    schema: T,
    opts?: CallOptions,
    init?: RequestInit,
  ): Promise<z.infer<T>> {
    const res = await this.#fetch(path, opts?.signal, true, init);
    let value: unknown;
    try {
      value = await res.json();
    } catch (err) {
      throw invalidAnswer(path, "it is not JSON", err);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw invalidAnswer(path, formatZodError(parsed.error), parsed.error);
    return parsed.data;
  }

  /** The signal of one call: the client's, the call's, and the time limit if `timed`. */
  #signal(signal: AbortSignal | undefined, timed: boolean): AbortSignal | undefined {
    const all = [this.#opts.signal, signal].filter((s) => s !== undefined);
    if (timed && this.#opts.timeoutMs !== undefined) {
      all.push(AbortSignal.timeout(this.#opts.timeoutMs));
    }
    return all.length === 0 ? undefined : all.length === 1 ? all[0] : AbortSignal.any(all);
  }

  /** A 2xx answer to `path`, or the error it stands for. */
  async #fetch(
    path: string,
    callSignal: AbortSignal | undefined,
    timed: boolean,
    init: RequestInit = {},
  ): Promise<Response> {
    const signal = this.#signal(callSignal, timed);
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        ...init,
        headers: { ...init.headers as Record<string, string>, ...this.#auth() },
        signal,
      });
    } catch (err) {
      throw this.#failure(err, signal, err instanceof TypeError);
    }
    if (!res.ok) throw await answerError(res);
    return res;
  }

  /**
   * What a failed request stands for: a time limit, an abort, or (when `unreachable`
   * says the request never got through) an unreachable peer.
   */
  #failure(err: unknown, signal: AbortSignal | undefined, unreachable: boolean): unknown {
    if (signal?.aborted) {
      const reason: unknown = signal.reason;
      if (reason instanceof DOMException && reason.name === "TimeoutError") {
        return new PeerTimeoutError(`The peer at ${this.url} did not answer in time`, {
          cause: reason,
        });
      }
      return reason;
    }
    return unreachable ? new PeerUnreachableError(this.url, { cause: err }) : err;
  }

  /** POSTs a streamed body (`lib/stream_post.ts`); resolves with a 2xx answer. */
  async #upload(path: string, body: ReadableStream<Uint8Array>, opts: PutOptions) {
    const signal = this.#signal(opts.signal, false);
    const res = await postStream(this.url + path, body, {
      headers: {
        ...this.#auth(),
        "content-type": "application/octet-stream",
        ...(opts.size === undefined ? {} : { "content-length": String(opts.size) }),
      },
      ...(signal ? { signal } : {}),
      unreachable: (cause) => new PeerUnreachableError(this.url, { cause }),
    }).catch((err) => {
      throw this.#failure(err, signal, false);
    });
    if (!res.ok) throw await answerError(res);
    return res;
  }

  /** The lines of an NDJSON answer, each parsed with `schema`. */
  async *#lines<T extends z.ZodType>(res: Response, schema: T): AsyncGenerator<z.infer<T>> {
    if (!res.body) return;
    const path = new URL(res.url || this.url).pathname;
    try {
      for await (const value of jsonLines(res.body)) {
        const parsed = schema.safeParse(value);
        if (!parsed.success) throw invalidAnswer(path, formatZodError(parsed.error), parsed.error);
        yield parsed.data;
      }
    } catch (err) {
      if (err instanceof P2pError) throw err;
      if (err instanceof SyntaxError) throw invalidAnswer(path, "a line is not JSON", err);
      throw new ControlError("stream_broken", `The answer of ${this.url} broke off`, 502, {
        cause: err,
      });
    }
  }
}

/** The error a non-2xx answer stands for: its JSON error body's code, or its text. */
async function answerError(res: Response): Promise<ControlError> {
  const text = await res.text().catch(() => "");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: the text says it.
  }
  const parsed = ErrorBody.safeParse(body);
  if (parsed.success) {
    return new ControlError(parsed.data.error.code, parsed.data.error.message, res.status);
  }
  const message = text.trim().slice(0, 300) || `The peer answered HTTP ${res.status}`;
  return new ControlError(`http_${res.status}`, message, res.status);
}

/** An answer that does not match its schema. */
function invalidAnswer(path: string, why: string, cause: unknown): ProtocolError {
  return new ProtocolError("invalid_answer", `The answer to '${path}' is not valid: ${why}`, {
    status: 502,
    cause,
  });
}

/** The error an `error` event reports. */
function streamError(e: ErrorEvent): ControlError {
  return new ControlError(e.code ?? "failed", e.message);
}

/** A stream that ended without its `done` event. */
function endedEarly(): ControlError {
  return new ControlError("ended_early", "The peer ended the answer early", 502);
}

/** The query string of a log query. */
function logParams(query: LogOptions): URLSearchParams {
  const q = new URLSearchParams();
  if (query.peer !== undefined) q.set("peer", query.peer);
  if (query.type !== undefined) q.set("type", query.type);
  if (query.since !== undefined) q.set("since", String(query.since));
  if (query.limit !== undefined) q.set("limit", String(query.limit));
  return q;
}

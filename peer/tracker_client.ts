/**
 * The peer's client of the tracker's HTTP API. Every call has a timeout and parses
 * the answer with the schemas of `proto/tracker.ts`; failures are `TrackerError`s
 * that say what went wrong.
 *
 * @module
 */
import type { z } from "zod";
import { formatZodError, P2pError } from "../proto/errors.ts";
import { toBase64 } from "../proto/ids.ts";
import type { Manifest } from "../proto/manifest.ts";
import {
  ErrorBody,
  HaveResponse,
  HolderList,
  ManifestResponse,
  PayloadInfo,
  PayloadList,
  PeerList,
  type RegisterPeerRequest,
  RegisterPeerResponse,
} from "../proto/tracker.ts";

/**
 * A tracker call failed: unreachable or timed out (`tracker_unreachable`), answered
 * something that is not its API (`tracker_bad_answer`), or answered an error, whose
 * code it keeps (`unknown_peer`, say; `tracker_error` when the answer had none).
 */
export class TrackerError extends P2pError {
  /** The tracker's HTTP status, or 0 when it could not be reached. */
  readonly httpStatus: number;
  constructor(code: string, message: string, httpStatus: number, options?: ErrorOptions) {
    super(code, message, options);
    this.httpStatus = httpStatus;
  }
}

/** Talks to one tracker. */
export class TrackerClient {
  readonly url: string;
  readonly #timeoutMs: number;

  constructor(url: string, opts: { timeoutMs?: number } = {}) {
    this.url = url.replace(/\/$/, "");
    this.#timeoutMs = opts.timeoutMs ?? 5000;
  }

  async #call(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      });
    } catch (cause) {
      const why = timeout.aborted ? `no answer within ${this.#timeoutMs} ms` : String(cause);
      throw new TrackerError(
        "tracker_unreachable",
        `Tracker ${this.url} unreachable: ${why}`,
        0,
        { cause },
      );
    }
    if (!res.ok) {
      const text = await res.text();
      const parsed = ErrorBody.safeParse(safeJson(text));
      const detail = parsed.success ? parsed.data.error.message : text.slice(0, 200);
      throw new TrackerError(
        parsed.success ? parsed.data.error.code : "tracker_error",
        `Tracker answered ${res.status} to ${method} ${path}: ${detail}`,
        res.status,
      );
    }
    return res;
  }

  async #json<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<z.infer<S>> {
    const res = await this.#call(method, path, body);
    const parsed = schema.safeParse(await res.json().catch(() => undefined));
    if (!parsed.success) {
      throw new TrackerError(
        "tracker_bad_answer",
        `Tracker sent an unexpected answer to ${method} ${path}: ${formatZodError(parsed.error)}`,
        res.status,
        { cause: parsed.error },
      );
    }
    return parsed.data;
  }

  /** Registers or heartbeats this peer. */
  register(reg: RegisterPeerRequest): Promise<z.infer<typeof RegisterPeerResponse>> {
    return this.#json(RegisterPeerResponse, "POST", "/peers", reg);
  }

  /** Removes this peer (on shutdown); a peer the tracker no longer knows is fine. */
  async unregister(peerId: string): Promise<void> {
    try {
      await (await this.#call("DELETE", `/peers/${peerId}`)).body?.cancel();
    } catch (err) {
      if (!(err instanceof TrackerError && err.httpStatus === 404)) throw err;
    }
  }

  /** Live peers. */
  async peers(): Promise<z.infer<typeof PeerList>["peers"]> {
    return (await this.#json(PeerList, "GET", "/peers")).peers;
  }

  /** Publishes a manifest (without bytes) so the tracker can list holders. */
  publish(
    payloadId: string,
    manifest: Manifest,
    name?: string,
  ): Promise<z.infer<typeof PayloadInfo>> {
    return this.#json(PayloadInfo, "PUT", `/payloads/${payloadId}`, {
      size: manifest.size,
      chunkSize: manifest.chunkSize,
      chunks: manifest.chunks,
      ...(name ? { name } : {}),
    });
  }

  /** Announces the chunk positions this peer holds. */
  announce(
    payloadId: string,
    peerId: string,
    bits: Uint8Array,
  ): Promise<z.infer<typeof HaveResponse>> {
    return this.#json(HaveResponse, "POST", `/payloads/${payloadId}/have`, {
      peerId,
      have: toBase64(bits),
    });
  }

  /** Who holds which chunk positions of a payload. */
  holders(payloadId: string): Promise<z.infer<typeof HolderList>> {
    return this.#json(HolderList, "GET", `/payloads/${payloadId}/peers`);
  }

  /** A payload's manifest as the tracker has it (verify it against the id before use). */
  manifest(payloadId: string): Promise<z.infer<typeof ManifestResponse>> {
    return this.#json(ManifestResponse, "GET", `/payloads/${payloadId}`);
  }

  /** One page of the payloads the tracker knows. */
  payloads(cursor?: string): Promise<z.infer<typeof PayloadList>> {
    const q = cursor ? `?limit=1000&cursor=${encodeURIComponent(cursor)}` : "?limit=1000";
    return this.#json(PayloadList, "GET", `/payloads${q}`);
  }

  /** Chunk bytes the tracker stores itself (verify them against the manifest). */
  async chunk(payloadId: string, index: number, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await this.#call(
      "GET",
      `/payloads/${payloadId}/chunks/${index}`,
      undefined,
      signal,
    );
    return new Uint8Array(await res.arrayBuffer());
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The peer's client of the tracker's HTTP API (`http://` or `https://`). Every call
 * has a timeout and parses the answer with the schemas of `proto/tracker.ts`;
 * failures are `TrackerError`s that say what went wrong.
 *
 * With a network key, every request carries the key's proof (`Authorization: P2P-HMAC
 * …`, see `proto/tracker_auth.ts`) over its method, path, body hash, time and a fresh
 * nonce. With an identity, the registration, the removal and each chunk announcement
 * are signed with the peer's Ed25519 key, `signedAt` growing from one to the next.
 *
 * An `https://` tracker whose certificate is self-signed must be trusted by the
 * process: `DENO_CERT=/path/to/tracker.pem` for `p2p peer` (or the system's store with
 * `DENO_TLS_CA_STORE=system`), or an `httpClient` made with `Deno.createHttpClient({
 * caCerts })` here.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { z } from "zod";
import { formatZodError, P2pError } from "../proto/errors.ts";
import { toBase64, toBase64Url } from "../proto/ids.ts";
import type { Manifest } from "../proto/manifest.ts";
import { isOpenNetwork } from "../proto/network_key.ts";
import {
  EMPTY_SHA256,
  formatPeerSignature,
  haveBytes,
  PEER_SIGNATURE_HEADER,
  peerRemoveBytes,
  registrationBytes,
  signRequest,
} from "../proto/tracker_auth.ts";
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
  UploadResponse,
} from "../proto/tracker.ts";

/** A registration before it is signed: the client adds the key, the time and the signature. */
export type UnsignedRegistration =
  & Omit<RegisterPeerRequest, "peerId" | "publicKey" | "signedAt" | "signature">
  & { peerId?: string };

/** What signs for a peer: its id, its public key (base64url) and its private key's signature. */
export interface TrackerSigner {
  peerId: string;
  publicKey: string;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** Options of a `TrackerClient`. */
export interface TrackerClientOptions {
  /** Per-call time limit (default 5 s). */
  timeoutMs?: number;
  /** The network key the tracker requires (none, or the open network's: no proof sent). */
  networkKey?: Uint8Array;
  /** The peer's identity, for the calls that change its record. */
  identity?: TrackerSigner;
  /** The HTTP client for every call (one trusting a self-signed tracker's certificate, say). */
  httpClient?: Deno.HttpClient;
}

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

/** More of a call: headers, and raw bytes sent instead of JSON with their type. */
interface CallExtra {
  headers?: Record<string, string>;
  raw?: Uint8Array;
  type?: string;
  /** A streamed body whose SHA-256 was computed beforehand (no per-call time limit). */
  stream?: { body: ReadableStream<Uint8Array>; sha256: string };
}

/** Talks to one tracker. */
export class TrackerClient {
  readonly url: string;
  readonly #timeoutMs: number;
  readonly #key: Uint8Array | undefined;
  readonly #identity: TrackerSigner | undefined;
  readonly #client: Deno.HttpClient | undefined;
  #lastSignedAt = 0;

  constructor(url: string, opts: TrackerClientOptions = {}) {
    this.url = url.replace(/\/$/, "");
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#key = opts.networkKey && !isOpenNetwork(opts.networkKey) ? opts.networkKey : undefined;
    this.#identity = opts.identity;
    this.#client = opts.httpClient;
  }

  /**
   * The headers that prove membership of a request to `path` (with its query) whose
   * body has the hex SHA-256 `sha256`; none on an open network.
   */
  async authHeaders(
    method: string,
    path: string,
    sha256 = EMPTY_SHA256,
  ): Promise<Record<string, string>> {
    if (!this.#key) return {};
    const url = new URL(this.url + path);
    return {
      authorization: await signRequest(this.#key, method, url.pathname + url.search, sha256),
    };
  }

  /** A time for the next signature: now, and always later than the last one. */
  #signedAt(): number {
    this.#lastSignedAt = Math.max(Date.now(), this.#lastSignedAt + 1);
    return this.#lastSignedAt;
  }

  #signer(what: string): TrackerSigner {
    if (!this.#identity) {
      throw new TypeError(`Cannot ${what}: this tracker client was made without an identity`);
    }
    return this.#identity;
  }

  async #call(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    extra: CallExtra = {},
  ): Promise<Response> {
    // A streamed upload may take long: only the caller's signal ends it.
    const timeout = extra.stream ? undefined : AbortSignal.timeout(this.#timeoutMs);
    const bytes = extra.raw ??
      (body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body)));
    const sha256 = extra.stream?.sha256 ??
      (bytes === undefined ? EMPTY_SHA256 : createHash("sha256").update(bytes).digest("hex"));
    const sent = extra.stream?.body ?? bytes as Uint8Array<ArrayBuffer> | undefined;
    const headers: Record<string, string> = {
      ...extra.headers,
      ...(sent === undefined ? {} : { "content-type": extra.type ?? "application/json" }),
      ...await this.authHeaders(method, path, sha256),
    };
    const signals = [signal, timeout].filter((x) => x !== undefined);
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}),
        headers,
        ...(sent === undefined ? {} : { body: sent }),
        ...(this.#client ? { client: this.#client } : {}),
      });
    } catch (cause) {
      const why = timeout?.aborted ? `no answer within ${this.#timeoutMs} ms` : String(cause);
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
    extra?: CallExtra,
  ): Promise<z.infer<S>> {
    return await this.#parse(
      schema,
      method,
      path,
      await this.#call(method, path, body, undefined, extra),
    );
  }

  async #parse<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    res: Response,
  ): Promise<z.infer<S>> {
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

  /** Registers or heartbeats this peer, as a record signed with its identity. */
  async register(reg: UnsignedRegistration): Promise<z.infer<typeof RegisterPeerResponse>> {
    const id = this.#signer("register");
    if (reg.peerId !== undefined && reg.peerId !== id.peerId) {
      throw new TypeError(`Cannot register '${reg.peerId}' with the identity of '${id.peerId}'`);
    }
    const fields = {
      ...reg,
      peerId: id.peerId,
      publicKey: id.publicKey,
      signedAt: this.#signedAt(),
    };
    const signature = toBase64Url(await id.sign(registrationBytes(fields)));
    return await this.#json(RegisterPeerResponse, "POST", "/peers", { ...fields, signature });
  }

  /** Removes this peer (on shutdown); a peer the tracker no longer knows is fine. */
  async unregister(peerId: string): Promise<void> {
    const id = this.#signer("unregister");
    const signedAt = this.#signedAt();
    const signature = await id.sign(peerRemoveBytes(peerId, signedAt));
    const headers = { [PEER_SIGNATURE_HEADER]: formatPeerSignature(signedAt, signature) };
    try {
      await (await this.#call("DELETE", `/peers/${peerId}`, undefined, undefined, { headers }))
        .body?.cancel();
    } catch (err) {
      if (!(err instanceof TrackerError && err.httpStatus === 404)) throw err;
    }
  }

  /** Live peers: a sample of at most `numwant` (the tracker's default: 100). */
  async peers(numwant?: number): Promise<PeerList["peers"]> {
    return (await this.listPeers({ numwant })).peers;
  }

  /**
   * `GET /peers`: a sample of at most `numwant` live peers, or with `since` (the
   * `version` of an earlier answer) what changed after it; see `PeerList`.
   */
  listPeers(q: { numwant?: number; since?: number } = {}): Promise<PeerList> {
    const params = new URLSearchParams();
    if (q.numwant !== undefined) params.set("numwant", String(q.numwant));
    if (q.since !== undefined) params.set("since", String(q.since));
    const search = params.size > 0 ? `?${params}` : "";
    return this.#json(PeerList, "GET", `/peers${search}`);
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

  /** Announces the chunk positions this peer holds, signed with its identity. */
  announce(
    payloadId: string,
    peerId: string,
    bits: Uint8Array,
  ): Promise<z.infer<typeof HaveResponse>> {
    return this.#have("announce", payloadId, peerId, { have: toBase64(bits) });
  }

  /**
   * Tells the tracker that `peerId` holds no chunk of a payload any more (after a
   * removal): an announcement of no chunk, signed like the others, which takes the
   * peer off the payload's holders.
   */
  withdraw(payloadId: string, peerId: string): Promise<z.infer<typeof HaveResponse>> {
    return this.#have("withdraw", payloadId, peerId, { chunks: [] });
  }

  /** `POST /payloads/{id}/have` of `what` (a bitfield or indices), signed. */
  async #have(
    during: string,
    payloadId: string,
    peerId: string,
    what: { have: string } | { chunks: number[] },
  ): Promise<z.infer<typeof HaveResponse>> {
    const id = this.#signer(during);
    const signedAt = this.#signedAt();
    const signature = toBase64Url(await id.sign(haveBytes(payloadId, peerId, what, signedAt)));
    return await this.#json(HaveResponse, "POST", `/payloads/${payloadId}/have`, {
      peerId,
      ...what,
      signedAt,
      signature,
    });
  }

  /**
   * Uploads a file to the tracker (`POST /payloads`) without holding it in memory: a
   * first pass hashes it (the membership proof covers the body's SHA-256), a second
   * streams it. A file that changes in between is refused (`401 body_mismatch`) and
   * leaves nothing on the tracker.
   */
  async uploadFile(
    path: string,
    name?: string,
    signal?: AbortSignal,
  ): Promise<z.infer<typeof UploadResponse>> {
    const hash = createHash("sha256");
    {
      const file = await Deno.open(path);
      for await (const chunk of file.readable) hash.update(chunk);
    }
    const file = await Deno.open(path);
    const q = name === undefined ? "" : `?name=${encodeURIComponent(name)}`;
    let res: Response;
    try {
      res = await this.#call("POST", `/payloads${q}`, undefined, signal, {
        type: "application/octet-stream",
        stream: { body: file.readable, sha256: hash.digest("hex") },
      });
    } catch (err) {
      try {
        file.close();
      } catch {
        // The stream closed it already.
      }
      throw err;
    }
    return await this.#parse(UploadResponse, "POST", "/payloads", res);
  }

  /** Uploads a payload's bytes to the tracker (`POST /payloads`), which keeps and spreads them. */
  upload(bytes: Uint8Array, name?: string): Promise<z.infer<typeof UploadResponse>> {
    const q = name === undefined ? "" : `?name=${encodeURIComponent(name)}`;
    return this.#json(UploadResponse, "POST", `/payloads${q}`, undefined, {
      raw: bytes,
      type: "application/octet-stream",
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

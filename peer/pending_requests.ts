/**
 * The requests one connection has sent and awaits answers to: request ids (a
 * wrapping u32 counter from 1, skipping ids still pending; 0 is HELLO's), one time
 * limit per request, an optional abort signal, and settling by the answer's
 * `requestId`, checked against the request's type (`proto/answers.ts`).
 *
 * ```ts
 * import { PendingRequests } from "./pending_requests.ts";
 *
 * const pending = new PendingRequests();
 * const id = pending.takeId();
 * const answer = pending.wait(id, "PING", 1000);
 * pending.settle({ type: "PONG", requestId: id, header: {}, body: new Uint8Array() });
 * console.assert((await answer).type === "PONG" && pending.size === 0);
 * ```
 *
 * @module
 */
import { expectAnswer, type RequestTypeName } from "../proto/answers.ts";
import { PeerTimeoutError } from "../proto/errors.ts";
import type { Message } from "../proto/messages.ts";

interface Pending {
  request: RequestTypeName;
  resolve: (msg: Message) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Requests awaiting their answers, by request id. */
export class PendingRequests {
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  /** Requests awaiting their answers. */
  get size(): number {
    return this.#pending.size;
  }

  /** A request id not in use: the next of a wrapping u32 counter, never 0. */
  takeId(): number {
    let id = this.#nextId;
    while (id === 0 || this.#pending.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    return id;
  }

  /**
   * Awaits the answer to request `requestId` of type `request`: resolves with it
   * (typed by `settle()`), or rejects with `PeerTimeoutError` after `timeoutMs`, with
   * the signal's reason when it aborts, or with what `rejectAll()` is given.
   */
  wait(
    requestId: number,
    request: RequestTypeName,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Message> {
    const { promise, resolve, reject } = Promise.withResolvers<Message>();
    const entry: Pending = {
      request,
      resolve,
      reject,
      // One timer per request, cleared with the answer: cheaper than a signal per
      // request on the 1 MiB-chunk hot path, and it never outlives the request.
      timer: setTimeout(() => {
        if (this.#forget(requestId, entry)) {
          reject(
            new PeerTimeoutError(
              `Peer did not answer '${request}' request '${requestId}' within '${timeoutMs}' ms`,
            ),
          );
        }
      }, timeoutMs),
      signal,
      onAbort: undefined,
    };
    if (signal) {
      entry.onAbort = () => {
        if (this.#forget(requestId, entry)) reject(signal.reason);
      };
      signal.addEventListener("abort", entry.onAbort, { once: true });
    }
    this.#pending.set(requestId, entry);
    return promise;
  }

  /**
   * Settles the request an answer is for: resolved with the answer when it has the
   * request's answer type, rejected with `RemoteError` for ERROR and `ProtocolError`
   * `unexpected_answer` for another type. False when no request awaits that id.
   */
  settle(answer: Message): boolean {
    const entry = this.#pending.get(answer.requestId);
    if (entry === undefined || !this.#forget(answer.requestId, entry)) return false;
    try {
      entry.resolve(expectAnswer(entry.request, answer));
    } catch (err) {
      entry.reject(err);
    }
    return true;
  }

  /** Rejects every request still awaiting its answer with `err` (the connection closed). */
  rejectAll(err: Error): void {
    for (const [id, entry] of [...this.#pending]) {
      this.#forget(id, entry);
      entry.reject(err);
    }
  }

  /** Removes a request and its timer and listener; false when it was settled already. */
  #forget(requestId: number, entry: Pending): boolean {
    if (this.#pending.get(requestId) !== entry) return false;
    this.#pending.delete(requestId);
    clearTimeout(entry.timer);
    if (entry.onAbort) entry.signal?.removeEventListener("abort", entry.onAbort);
    return true;
  }
}

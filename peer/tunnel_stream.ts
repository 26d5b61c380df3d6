/**
 * One tunnel stream of a peer link (`tunnel_mux.ts` owns them): a duplex byte stream
 * shaped like a `Deno.Conn`, so the HTTP relay reads and writes it as it does a
 * socket. What it writes goes out as HTTP_DATA frames of at most `MAX_TUNNEL_DATA`
 * bytes, queued on the link as its credit allows: a write resolves once its frames
 * are queued (their bodies copied there), not written, since waiting for each
 * socket write took several event loop turns per frame (85 against 300 MiB/s
 * through a stream over loopback TCP). The credit bounds what a stream may have
 * waiting on the link. What arrives waits in a queue until read.
 *
 * **Flow control**, per direction, as in HTTP/2 and yamux: a side may send at most
 * `TUNNEL_WINDOW` bytes the other side's reader has not taken yet. The receiver
 * gives credit back (HTTP_WINDOW) as its reader takes bytes, a quarter window at a
 * time; a sender out of credit waits. So a stalled reader holds at most one window
 * here, and a sender that sends past its credit breaks the stream (HTTP_RESET
 * `flow_control`), not the link.
 *
 * **Ends.** `closeWrite()` sends HTTP_END (no more bytes this way); `close()` ends
 * both ways: HTTP_END if not sent, and HTTP_RESET `closed` when the other side's
 * end has not arrived yet (it should stop sending). HTTP_END from the other side
 * makes reads return `null` once the queue is read; HTTP_RESET, or the link
 * closing, does the same and makes writes fail.
 *
 * @module
 */
import { P2pError } from "../proto/errors.ts";
import { MAX_TUNNEL_DATA, type MessageInit, TUNNEL_WINDOW } from "../proto/messages.ts";

/** Credit is given back once the reader has taken this many bytes. */
export const CREDIT_STEP = TUNNEL_WINDOW / 4;

/** What a stream needs of its link. */
export interface StreamLink {
  /** Writes one frame on the link; resolves once it is written. */
  send(msg: MessageInit): Promise<void>;
  /** The stream is done: no frame will go either way for it any more. */
  release(stream: TunnelStream): void;
}

const noop = () => {};

/** A tunnel stream: a `Deno.Conn` over HTTP_DATA frames of one link. */
export class TunnelStream implements Deno.Conn {
  /** The stream id (the `requestId` of its frames). */
  readonly id: number;
  /** Where the other end is, for the relay: a name, not an IP address. */
  readonly remoteAddr: Deno.NetAddr;
  /** Where this end is (the same name). */
  readonly localAddr: Deno.NetAddr;
  /** Resolves once the stream is done (closed, reset, ended both ways, or its link closed). */
  readonly closed: Promise<void>;
  readonly #link: StreamLink;
  readonly #queue: Uint8Array[] = [];
  /** Bytes in `#queue`. */
  #queued = 0;
  /** Bytes the other side may still send: the window less what came and was not read. */
  #allowance = TUNNEL_WINDOW;
  /** Bytes read and not yet given back as credit. */
  #unreported = 0;
  /** Bytes this side may still send. */
  #credit = TUNNEL_WINDOW;
  /** No more bytes will arrive (HTTP_END, HTTP_RESET, link closed, closed here). */
  #inEnded = false;
  /** No more bytes will be sent (HTTP_END sent, or the stream broke). */
  #outEnded = false;
  /** Why writes fail: a reset either way, or the link closing. */
  #error: Error | undefined;
  #released = false;
  #readWait: PromiseWithResolvers<void> | undefined;
  #creditWait: PromiseWithResolvers<void> | undefined;
  /** The writes in progress, one after the other. */
  #writing: Promise<unknown> = Promise.resolve();
  readonly #done = Promise.withResolvers<void>();
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /** A stream `id` on `link`, its other end named `remote` (e.g. `_p2p-{peerId}`). */
  constructor(id: number, link: StreamLink, remote: string) {
    this.id = id;
    this.#link = link;
    this.remoteAddr = { transport: "tcp", hostname: remote, port: 0 };
    this.localAddr = this.remoteAddr;
    this.closed = this.#done.promise;
  }

  /** Bytes received and not read yet (at most `TUNNEL_WINDOW`). */
  get buffered(): number {
    return this.#queued;
  }

  /** Bytes this side may send before it waits for credit. */
  get credit(): number {
    return this.#credit;
  }

  /**
   * Reads received bytes into `p`; waits for some. Resolves with `null` once the
   * other side ended (or the stream broke or was closed) and the queue is read.
   */
  async read(p: Uint8Array): Promise<number | null> {
    while (this.#queued === 0) {
      if (this.#inEnded) return null;
      this.#readWait ??= Promise.withResolvers<void>();
      await this.#readWait.promise;
    }
    let n = 0;
    while (n < p.length && this.#queue.length > 0) {
      const head = this.#queue[0];
      const take = Math.min(head.length, p.length - n);
      p.set(head.subarray(0, take), n);
      n += take;
      if (take === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(take);
    }
    this.#queued -= n;
    this.#unreported += n;
    if (this.#unreported >= CREDIT_STEP && !this.#inEnded) {
      const credit = this.#unreported;
      this.#unreported = 0;
      this.#allowance += credit;
      this.#send({ type: "HTTP_WINDOW", requestId: this.id, header: { credit } });
    }
    return n;
  }

  /**
   * Sends all of `p` (in frames as credit allows), resolving with its length once
   * the last frame is queued on the link. Rejects with `P2pError` `stream_closed`
   * when the stream was closed, reset or its link closed.
   */
  write(p: Uint8Array): Promise<number> {
    const run = this.#writing.then(() => this.#writeAll(p));
    this.#writing = run.catch(noop);
    return run;
  }

  /** Sends HTTP_END after the writes in progress: no more bytes go this way. */
  async closeWrite(): Promise<void> {
    await this.#writing;
    if (this.#outEnded) return;
    this.#outEnded = true;
    this.#send({ type: "HTTP_END", requestId: this.id, header: {} });
    if (this.#inEnded) this.#release();
  }

  /**
   * Ends the stream both ways (idempotent): HTTP_END if not sent, HTTP_RESET
   * `closed` when the other side has not ended; writes in progress fail, reads end.
   */
  close(): void {
    if (this.#released) return;
    if (!this.#error) {
      if (!this.#outEnded) this.#send({ type: "HTTP_END", requestId: this.id, header: {} });
      if (!this.#inEnded) {
        this.#send({
          type: "HTTP_RESET",
          requestId: this.id,
          header: { code: "closed", message: "The other end closed the stream" },
        });
      }
    }
    this.#break(new P2pError("stream_closed", `Tunnel stream '${this.id}' is closed`));
  }

  /** Nothing to do: a stream keeps no event loop alive of its own. */
  ref(): void {}
  /** Nothing to do (see `ref()`). */
  unref(): void {}

  [Symbol.dispose](): void {
    this.close();
  }

  /** The bytes read, as a stream (made on first use). */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return this.#readable ??= new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (ctrl) => {
        const buf = new Uint8Array(MAX_TUNNEL_DATA);
        const n = await this.read(buf);
        if (n === null) ctrl.close();
        else ctrl.enqueue(buf.subarray(0, n));
      },
      cancel: () => this.close(),
    });
  }

  /** Where to write bytes, as a stream (made on first use); closing it sends HTTP_END. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: async (chunk) => void await this.write(chunk),
      close: () => this.closeWrite(),
      abort: () => this.close(),
    });
  }

  /**
   * HTTP_DATA arrived: queued for the reader. False when it breaks flow control (more
   * than the credit given, or after HTTP_END): the caller resets the stream.
   */
  receiveData(body: Uint8Array): boolean {
    if (this.#inEnded || body.length > this.#allowance) return false;
    this.#allowance -= body.length;
    this.#queue.push(body);
    this.#queued += body.length;
    this.#wakeReader();
    return true;
  }

  /** HTTP_WINDOW arrived; false when it gives more than a window of credit. */
  receiveWindow(credit: number): boolean {
    if (this.#credit + credit > TUNNEL_WINDOW) return false;
    this.#credit += credit;
    this.#creditWait?.resolve();
    this.#creditWait = undefined;
    return true;
  }

  /** HTTP_END arrived: reads end once the queue is read. */
  receiveEnd(): void {
    this.#inEnded = true;
    this.#wakeReader();
    if (this.#outEnded) this.#release();
  }

  /** The stream broke (HTTP_RESET, the link closing): writes fail, reads end, nothing more is sent. */
  abort(err: Error): void {
    this.#break(err);
  }

  async #writeAll(p: Uint8Array): Promise<number> {
    let off = 0;
    while (off < p.length) {
      if (this.#error) throw this.#error;
      if (this.#outEnded) {
        throw new P2pError("stream_closed", `Tunnel stream '${this.id}' was ended for writes`);
      }
      if (this.#credit === 0) {
        this.#creditWait ??= Promise.withResolvers<void>();
        await this.#creditWait.promise;
        continue;
      }
      const n = Math.min(p.length - off, this.#credit, MAX_TUNNEL_DATA);
      this.#credit -= n;
      // Not awaited (see the module docs); `send()` copies a body this small.
      this.#link.send({
        type: "HTTP_DATA",
        requestId: this.id,
        header: {},
        body: p.subarray(off, off + n),
      }).catch((err) => this.#break(err));
      off += n;
    }
    return p.length;
  }

  #send(msg: MessageInit): void {
    // A failed write closes the link, which breaks every stream on it.
    this.#link.send(msg).catch(noop);
  }

  #wakeReader(): void {
    this.#readWait?.resolve();
    this.#readWait = undefined;
  }

  #break(err: Error): void {
    this.#error ??= err;
    this.#inEnded = this.#outEnded = true;
    this.#wakeReader();
    this.#creditWait?.resolve();
    this.#creditWait = undefined;
    this.#release();
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#link.release(this);
    this.#done.resolve();
  }
}

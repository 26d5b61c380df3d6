/**
 * Upstream connections: dialled on demand, each with its `Inbox`, and kept idle
 * after an answer for the next request to the same upstream, up to 256 per
 * upstream and for `idleMs` (an expired one is closed by its deadline). An idle
 * connection is taken without a promise.
 *
 * @module
 */
import type { Deadline, Deadlines } from "./deadlines.ts";
import { closeQuietly, Inbox } from "./inbox.ts";
import type { Connector } from "./types.ts";

/** Idle upstream connections kept per upstream. */
export const MAX_IDLE = 256;

/** Where an upstream is: what the pool dials and keys its idle connections by. */
export interface UpstreamAddress {
  /** The host to connect to, an IPv6 literal without brackets. */
  hostname: string;
  port: number;
  /** What its idle connections are kept under. */
  key: string;
}

/** An upstream connection, with what it has sent. */
export interface Upstream {
  conn: Deno.Conn;
  inbox: Inbox;
  key: string;
  /** Taken from the idle ones (so it may have been closed meanwhile). */
  reused: boolean;
  idleSince: number;
  /** Closes it once it has been idle too long. */
  expiry?: Deadline;
  /** The time limit on the request in progress, which calls `onTimeout`. */
  timeout?: Deadline;
  onTimeout?: () => void;
}

/** The upstream connections of one relay: dialled, and kept idle between requests. */
export class UpstreamPool {
  #idle = new Map<string, Upstream[]>();
  #closed = false;

  /**
   * A pool whose idle connections close after `idleMs`, on `deadlines`, at most
   * `maxIdle` kept per upstream.
   */
  constructor(
    readonly deadlines: Deadlines,
    readonly idleMs: number,
    readonly maxIdle: number = MAX_IDLE,
  ) {}

  /** How many idle connections it holds now. */
  get idleCount(): number {
    let n = 0;
    for (const list of this.#idle.values()) n += list.length;
    return n;
  }

  /**
   * An idle connection to `to` (or of `connector`, when the upstream is reached
   * through one) that may still be open, if there is one.
   */
  take(to: UpstreamAddress, connector?: Connector): Upstream | undefined {
    const list = this.#idle.get(connector?.key ?? to.key);
    const now = performance.now();
    while (list && list.length > 0) {
      const u = list.pop()!;
      u.expiry?.disarm();
      if (!u.inbox.eof && now - u.idleSince < this.idleMs) {
        u.reused = true;
        return u;
      }
      closeQuietly(u.conn);
    }
    return undefined;
  }

  /**
   * A new connection to `to`, or from `connector` when given. Rejects as
   * `Deno.connect` (or the connector) does.
   */
  async dial(to: UpstreamAddress, connector?: Connector): Promise<Upstream> {
    let conn: Deno.Conn;
    if (connector) conn = await connector.connect();
    else {
      const tcp = await Deno.connect({ hostname: to.hostname, port: to.port });
      tcp.setNoDelay(true);
      conn = tcp;
    }
    const key = connector?.key ?? to.key;
    return { conn, inbox: new Inbox(conn), key, reused: false, idleSince: 0 };
  }

  /** Keeps `up` idle for the next request (or closes it when the pool is full or closed). */
  release(up: Upstream): void {
    if (this.#closed) return closeQuietly(up.conn);
    let list = this.#idle.get(up.key);
    if (!list) this.#idle.set(up.key, list = []);
    if (list.length >= this.maxIdle) return closeQuietly(up.conn);
    up.idleSince = performance.now();
    list.push(up);
    up.expiry ??= this.deadlines.make(() => {
      const idle = this.#idle.get(up.key);
      const at = idle?.indexOf(up) ?? -1;
      if (at >= 0) idle!.splice(at, 1);
      closeQuietly(up.conn);
    });
    up.expiry.arm(this.idleMs);
  }

  /** Closes every idle connection; those released later are closed at once. */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const u of list) closeQuietly(u.conn);
    this.#idle.clear();
  }
}

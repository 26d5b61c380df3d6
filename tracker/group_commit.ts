/**
 * Group commit for Deno KV: writes that arrive within a short window go to KV in one
 * atomic commit, which costs little more than one write alone; while a few groups are
 * being committed (`maxInFlight`), the next one gathers what arrives meanwhile. Each
 * write still has its own checks, and its promise settles only with the outcome of the
 * commit that carried it: `ok` once KV has it, never before.
 *
 * A group stays within KV's limits of one atomic operation (checks, mutations, bytes),
 * and never holds two writes that touch one key, nor one that touches a key of a group
 * being committed (both would pass their checks against the same versionstamp): the
 * later one waits for the next group. When a group fails its checks, each of its
 * writes is committed again alone, so one stale write does not fail the others; a
 * commit that throws rejects every write it carried.
 *
 * @module
 */

/** One write: its keys, its size, and what it adds to the atomic operation. */
export interface GroupWrite<T> {
  /** Keys it checks or changes (what two writes of one group must not share). */
  keys: Deno.KvKey[];
  checks: number;
  mutations: number;
  /** Bytes its values and keys take, about. */
  bytes: number;
  /** Adds its checks and mutations to `op`; what it returns comes back with the outcome. */
  build(op: Deno.AtomicOperation): T;
}

/** How one write ended: `ok` with the versionstamp of the commit that carried it. */
export type GroupOutcome<T> =
  | { ok: true; versionstamp: string; value: T }
  | { ok: false; value: T };

/** Limits of one group; the defaults are Deno KV's, with a margin. */
export interface GroupCommitOptions {
  /** Milliseconds a write waits for others before its group goes (default 5). */
  windowMs?: number;
  /**
   * Writes queued that make a group go at once, without waiting (default 16). Under a
   * closed loop of clients (each sends its next write once the last one is committed)
   * a group that waits for all of them leaves the main thread idle while KV commits
   * it; one that goes at half lets the main thread read and check the other half
   * meanwhile. `bench/tracker_http.ts` (32 connections), four pairs in turn
   * (2026-12-04): 16 gave 0.316-0.337 of opentracker's rate, 32 gave 0.222-0.293.
   */
  fullGroup?: number;
  /** Groups being committed at once (default 4); the next one forms meanwhile. */
  maxInFlight?: number;
  maxChecks?: number;
  maxMutations?: number;
  maxBytes?: number;
}

interface Queued {
  write: GroupWrite<unknown>;
  done: PromiseWithResolvers<GroupOutcome<unknown>>;
  keys: string[];
}

/** Batches writes into few atomic commits. */
export class GroupCommit {
  readonly #kv: Deno.Kv;
  readonly #windowMs: number;
  readonly #max: { checks: number; mutations: number; bytes: number };
  readonly #maxInFlight: number;
  readonly #fullGroup: number;
  #queue: Queued[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight = 0;
  /** Keys of the groups being committed: a write on one of them waits for its group. */
  readonly #busy = new Set<string>();
  /** Atomic commits made, and writes they carried (for tests and metrics). */
  readonly stats = { commits: 0, writes: 0 };

  constructor(kv: Deno.Kv, opts: GroupCommitOptions = {}) {
    this.#kv = kv;
    this.#windowMs = opts.windowMs ?? 5;
    this.#maxInFlight = opts.maxInFlight ?? 4;
    this.#fullGroup = opts.fullGroup ?? 16;
    this.#max = {
      checks: opts.maxChecks ?? 100,
      mutations: opts.maxMutations ?? 1000,
      bytes: opts.maxBytes ?? 600_000,
    };
  }

  /** Commits `write` with the others of its group; settles once that commit ended. */
  commit<T>(write: GroupWrite<T>): Promise<GroupOutcome<T>> {
    const done = Promise.withResolvers<GroupOutcome<unknown>>();
    this.#queue.push({ write, done, keys: write.keys.map(keyText) });
    this.#schedule();
    return done.promise as Promise<GroupOutcome<T>>;
  }

  #schedule(): void {
    if (this.#inFlight >= this.#maxInFlight || this.#queue.length === 0) return;
    // A full group goes at once; a smaller one waits out the window for company.
    if (this.#queue.length >= this.#fullGroup) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#startGroup();
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#startGroup();
    }, this.#windowMs);
  }

  #startGroup(): void {
    const group = this.#take();
    if (group.length === 0) return; // all wait for keys being committed
    this.#inFlight++;
    const keys = group.flatMap((q) => q.keys);
    for (const k of keys) this.#busy.add(k);
    this.#commitGroup(group).finally(() => {
      for (const k of keys) this.#busy.delete(k);
      this.#inFlight--;
      this.#schedule();
    });
    this.#schedule();
  }

  /**
   * The next group: queued writes in order, within the limits, sharing no key with
   * each other or with a group being committed.
   */
  #take(): Queued[] {
    const group: Queued[] = [];
    const rest: Queued[] = [];
    const keys = new Set<string>(this.#busy);
    let checks = 0;
    let mutations = 0;
    let bytes = 0;
    for (const q of this.#queue) {
      const w = q.write;
      const fits = !q.keys.some((k) => keys.has(k)) && (group.length === 0 || (
        checks + w.checks <= this.#max.checks &&
        mutations + w.mutations <= this.#max.mutations &&
        bytes + w.bytes <= this.#max.bytes
      ));
      // A write that waits holds its keys, so later writes of one key keep their order.
      for (const k of q.keys) keys.add(k);
      if (!fits) {
        rest.push(q);
        continue;
      }
      group.push(q);
      checks += w.checks;
      mutations += w.mutations;
      bytes += w.bytes;
    }
    this.#queue = rest;
    return group;
  }

  async #commitGroup(group: Queued[]): Promise<void> {
    const op = this.#kv.atomic();
    let values: unknown[];
    let res: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      values = group.map((q) => q.write.build(op));
      res = await op.commit();
    } catch (err) {
      for (const q of group) q.done.reject(err);
      return;
    }
    this.stats.commits++;
    this.stats.writes += group.length;
    if (res.ok) {
      group.forEach((q, i) =>
        q.done.resolve({ ok: true, versionstamp: res.versionstamp, value: values[i] })
      );
      return;
    }
    if (group.length === 1) {
      group[0].done.resolve({ ok: false, value: values[0] });
      return;
    }
    // One of them is stale: each goes alone, so only that one fails.
    for (const q of group) await this.#commitGroup([q]);
  }
}

/** A key as text for comparing (parts that print alike only make a write wait). */
function keyText(key: Deno.KvKey): string {
  return key.map(String).join("\u0000");
}

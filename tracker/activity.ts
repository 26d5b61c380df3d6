/**
 * The tracker's activity log. Records live in Deno KV under `["activity", id]` (the
 * newest `keep`) and are appended to a JSON-lines file that rotates by size
 * (`NAME.1.jsonl` … `NAME.<keepFiles>.jsonl`, see `lib/rotating_file.ts`). A record that describes a change of state
 * (a registration, an upload) is written in the same atomic commit as the change,
 * so one is never kept without the other; records of queries and errors are
 * buffered and written in batches. Those that repeat (the same query or refusal from
 * one address) go through `recordFolded()`: five a minute of each, then one record
 * with the `count` of the rest (`lib/repeat_fold.ts`), so a flood of requests costs
 * a few records, not one KV write each.
 *
 * @module
 */
import { type ActivityPage, type ActivityRecord, typeMatches } from "../proto/activity.ts";
import { OVERFLOW_KEY, RepeatFold } from "../lib/repeat_fold.ts";
import { RotatingFile } from "../lib/rotating_file.ts";

const KEY = "activity";
/** How long buffered records wait before they are written. */
const FLUSH_MS = 100;
/** At most this many mutations go in one atomic commit (Deno KV allows 1000). */
const BATCH = 500;
/** A filtered query scans at most this many records before it answers. */
const SCAN_LIMIT = 10_000;

/** Options of `ActivityLog.open()`. */
export interface ActivityLogOptions {
  /** JSON-lines file to append to; none when undefined. */
  path?: string;
  /** Milliseconds since the epoch; `Date.now` by default. */
  clock?: () => number;
  /** How many records to keep in KV; older ones are pruned by `prune()`. */
  keep?: number;
  /** Rotate the file once it reaches this many bytes (default 64 MiB). */
  maxFileBytes?: number;
  /** Rotated files kept besides the current one (default 4). */
  keepFiles?: number;
  /** Records of one key `recordFolded()` lets through a minute (default 5). */
  foldKeep?: number;
}

/** The activity log of one tracker (one writer per KV database). */
export class ActivityLog {
  readonly #kv: Deno.Kv;
  readonly #file: RotatingFile | undefined;
  readonly #clock: () => number;
  readonly #keep: number;
  #lastId: number;
  #pending: ActivityRecord[] = [];
  /** Committed records not yet in the file (written at the end of the current task). */
  #committed: ActivityRecord[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #encoder = new TextEncoder();
  readonly #fold: RepeatFold;

  private constructor(
    kv: Deno.Kv,
    file: RotatingFile | undefined,
    clock: () => number,
    keep: number,
    lastId: number,
    foldKeep: number | undefined,
  ) {
    this.#kv = kv;
    this.#file = file;
    this.#clock = clock;
    this.#keep = keep;
    this.#lastId = lastId;
    this.#fold = new RepeatFold((s) => {
      const span = {
        count: s.count,
        first: new Date(s.first).toISOString(),
        last: new Date(s.last).toISOString(),
        folded: true,
      };
      if (s.key === OVERFLOW_KEY) return void this.record("folded.overflow", span);
      const [type, fields] = JSON.parse(s.key);
      this.record(type, { ...fields, ...span });
    }, { keep: foldKeep, clock });
  }

  /** Opens the log on `kv`, continuing after the last record already stored. */
  static async open(kv: Deno.Kv, options: ActivityLogOptions = {}): Promise<ActivityLog> {
    let lastId = 0;
    for await (const e of kv.list<ActivityRecord>({ prefix: [KEY] }, { reverse: true, limit: 1 })) {
      lastId = e.key[1] as number;
    }
    const file = options.path === undefined ? undefined : await RotatingFile.open(options.path, {
      maxBytes: options.maxFileBytes ?? 64 * 1024 * 1024,
      keepFiles: options.keepFiles ?? 4,
    });
    return new ActivityLog(
      kv,
      file,
      options.clock ?? Date.now,
      options.keep ?? 100_000,
      lastId,
      options.foldKeep,
    );
  }

  /** Id of the newest record handed out. */
  get lastId(): number {
    return this.#lastId;
  }

  #make(type: string, fields: Record<string, unknown>): ActivityRecord {
    return { id: ++this.#lastId, ts: new Date(this.#clock()).toISOString(), type, ...fields };
  }

  /**
   * Adds a record to an atomic operation that is about to be committed; call
   * `committed()` with it once the commit succeeded.
   */
  stage(op: Deno.AtomicOperation, type: string, fields: Record<string, unknown>): ActivityRecord {
    const rec = this.#make(type, fields);
    op.set([KEY, rec.id], rec);
    return rec;
  }

  /**
   * Appends a record that was committed with `stage()` to the JSON-lines file: the
   * records of one group commit, acknowledged together, go in one write.
   */
  committed(rec: ActivityRecord): void {
    this.#committed.push(rec);
    if (this.#committed.length === 1) queueMicrotask(() => this.#appendCommitted());
  }

  #appendCommitted(): void {
    const batch = this.#committed;
    this.#committed = [];
    this.#append(batch);
  }

  /** Records an event that changes no state (a query, an error); written within 100 ms. */
  record(type: string, fields: Record<string, unknown> = {}): ActivityRecord {
    const rec = this.#make(type, fields);
    if (this.#closed) return rec;
    this.#pending.push(rec);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch((err) => console.error(`activity: cannot write records: ${err}`));
    }, FLUSH_MS);
    return rec;
  }

  /**
   * Records an event like `record()`, unless five with the same values of the fields
   * named in `by` came within the minute: then it is counted, and when the minute
   * ends one record of `type` with those fields says how many (`count`, `first`,
   * `last`, `folded: true`). Returns the record, if one was made.
   */
  recordFolded(
    type: string,
    fields: Record<string, unknown>,
    by: readonly string[],
  ): ActivityRecord | undefined {
    const key: Record<string, unknown> = {};
    for (const name of by) key[name] = fields[name];
    return this.#fold.note(JSON.stringify([type, key])).pass
      ? this.record(type, fields)
      : undefined;
  }

  /** Writes buffered records now. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#pending;
    this.#pending = [];
    // The file comes first, so a record survives even when KV is what failed.
    this.#append(batch);
    const write = this.#flushing.then(async () => {
      for (let i = 0; i < batch.length; i += BATCH) {
        const op = this.#kv.atomic();
        for (const rec of batch.slice(i, i + BATCH)) op.set([KEY, rec.id], rec);
        await op.commit();
      }
    });
    this.#flushing = write.catch(() => {});
    return write;
  }

  #append(records: ActivityRecord[]): void {
    if (!this.#file || this.#closed || records.length === 0) return;
    const text = records.map((r) => JSON.stringify(r)).join("\n") + "\n";
    this.#file.appendSync(this.#encoder.encode(text));
  }

  /** Records with `id > since`, in order, at most `limit`, optionally of one type (prefix). */
  async query(q: { since: number; limit: number; type?: string }): Promise<ActivityPage> {
    await this.flush();
    const records: ActivityRecord[] = [];
    let scanned = 0;
    let last = q.since;
    const iter = this.#kv.list<ActivityRecord>({
      start: [KEY, q.since + 1],
      end: [KEY, Number.MAX_SAFE_INTEGER],
    });
    for await (const e of iter) {
      last = e.key[1] as number;
      if (typeMatches(e.value.type, q.type)) records.push(e.value);
      if (records.length >= q.limit || ++scanned >= SCAN_LIMIT) {
        return { records, next: last };
      }
    }
    return { records, next: null };
  }

  /** Deletes the oldest records beyond the `keep` newest; returns how many. */
  async prune(): Promise<number> {
    const below = this.#lastId - this.#keep;
    if (below <= 0) return 0;
    let n = 0;
    let op = this.#kv.atomic();
    let inOp = 0;
    for await (const e of this.#kv.list({ start: [KEY, 0], end: [KEY, below + 1] })) {
      op.delete(e.key);
      n++;
      if (++inOp === BATCH) {
        await op.commit();
        op = this.#kv.atomic();
        inOp = 0;
      }
    }
    if (inOp) await op.commit();
    return n;
  }

  /** Flushes and closes the file; records made afterwards are dropped. */
  async close(): Promise<void> {
    // What was counted is recorded before the last flush.
    this.#fold.close();
    this.#appendCommitted();
    await this.flush().catch((err) => console.error(`activity: cannot write records: ${err}`));
    this.#closed = true;
    this.#file?.close();
  }
}

/**
 * A peer's activity log: every connection, query, chunk sent or received, failure
 * and tracker exchange, one JSON object a line in `activity.jsonl` in the data
 * directory. The file rotates by size (`activity.1.jsonl` … `activity.N.jsonl`);
 * the newest records are also kept in memory to answer `p2p log`, LOG? requests
 * from other peers, and followers.
 *
 * Refusals go through `refused()`, which folds a flood: per type, address and code,
 * the first few of a minute are records of their own and the rest one record with
 * their `count` when the minute ends (`lib/repeat_fold.ts`).
 *
 * @module
 */
import { type ActivityPage, ActivityRecord, typeMatches } from "../proto/activity.ts";
import { OVERFLOW_KEY, RepeatFold, type RepeatFoldOptions } from "../lib/repeat_fold.ts";
import { rotatedPath, RotatingFile } from "../lib/rotating_file.ts";

/** Options of `PeerLog.open()`. */
export interface PeerLogOptions {
  /** Rotate when the file grows past this many bytes (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files kept besides the current one (default 3). */
  keepFiles?: number;
  /** Records kept in memory for queries (default 10 000). */
  memory?: number;
  /** Also print each record to stderr as one line. */
  echo?: boolean;
  /** How `refused()` folds repeats (a minute; 5 records of a key, then a count). */
  fold?: RepeatFoldOptions;
}

/** The type of the record that counts refusals from more addresses than are followed. */
export const FOLDED_OVERFLOW_TYPE = "refused.overflow";

/** The activity log of one peer. */
export class PeerLog {
  readonly path: string;
  readonly #memory: number;
  readonly #echo: boolean;
  #file: RotatingFile | undefined;
  #lastId: number;
  readonly #ring: ActivityRecord[];
  readonly #followers = new Set<(rec: ActivityRecord) => void>();
  readonly #encoder = new TextEncoder();
  readonly #fold: RepeatFold;

  private constructor(
    path: string,
    file: RotatingFile,
    ring: ActivityRecord[],
    opts: PeerLogOptions,
  ) {
    this.path = path;
    this.#file = file;
    this.#ring = ring;
    this.#lastId = ring.at(-1)?.id ?? 0;
    this.#memory = opts.memory ?? 10_000;
    this.#echo = opts.echo ?? false;
    this.#fold = new RepeatFold((s) => {
      const span = { count: s.count, first: iso(s.first), last: iso(s.last), folded: true };
      if (s.key === OVERFLOW_KEY) return void this.record(FOLDED_OVERFLOW_TYPE, span);
      const [type, from, code, status] = JSON.parse(s.key);
      this.record(type, { from, code, ...(status === "" ? {} : { status }), ...span });
    }, opts.fold);
  }

  /** Opens (or creates) the log at `path`, reloading its newest records into memory. */
  static async open(path: string, opts: PeerLogOptions = {}): Promise<PeerLog> {
    const memory = opts.memory ?? 10_000;
    let ring: ActivityRecord[] = [];
    try {
      const text = await Deno.readTextFile(path);
      for (const line of text.split("\n")) {
        if (!line) continue;
        const rec = parseRecord(line);
        // A line torn by a crash is skipped.
        if (rec) ring.push(rec);
      }
      if (ring.length > memory) ring = ring.slice(-memory);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (ring.length === 0) ring = await lastOfRotated(path);
    const file = await RotatingFile.open(path, {
      maxBytes: opts.maxBytes ?? 10 * 1024 * 1024,
      keepFiles: opts.keepFiles ?? 3,
    });
    return new PeerLog(path, file, ring, opts);
  }

  /** Id of the newest record. */
  get lastId(): number {
    return this.#lastId;
  }

  /** Appends a record and tells followers; returns it. */
  record(type: string, fields: Record<string, unknown> = {}): ActivityRecord {
    const rec: ActivityRecord = {
      id: ++this.#lastId,
      ts: new Date().toISOString(),
      type,
      ...fields,
    };
    this.#ring.push(rec);
    if (this.#ring.length > this.#memory * 1.25) {
      this.#ring.splice(0, this.#ring.length - this.#memory);
    }
    if (this.#file) {
      try {
        this.#file.appendSync(this.#encoder.encode(JSON.stringify(rec) + "\n"));
      } catch (err) {
        console.error(`p2p: cannot write activity log '${this.path}': ${err}`);
      }
    }
    if (this.#echo) console.error(`[${rec.ts}] ${type} ${JSON.stringify(fields)}`);
    for (const f of this.#followers) f(rec);
    return rec;
  }

  /**
   * Records a refusal (`type`, with `from`, `code` and `status` in `fields`), unless
   * that address had that refusal five times already this minute: then it is counted,
   * and when the minute ends one record of the same type says how many there were
   * (`count`, `first`, `last`, `folded: true`). Returns the record, if one was made.
   */
  refused(type: string, fields: Record<string, unknown> = {}): ActivityRecord | undefined {
    const key = JSON.stringify([
      type,
      String(fields.from ?? ""),
      String(fields.code ?? ""),
      fields.status ?? "",
    ]);
    return this.#fold.note(key).pass ? this.record(type, fields) : undefined;
  }

  /**
   * Records with `id > since`, oldest first, at most `limit`, of a type (dotted
   * prefix). Without `since`, the newest `limit` records (the tail).
   */
  query(q: { since?: number; limit?: number; type?: string }): ActivityPage {
    const limit = q.limit ?? 100;
    if (q.since === undefined) {
      const records = this.#ring.filter((r) => typeMatches(r.type, q.type)).slice(-limit);
      return { records, next: null };
    }
    const since = q.since;
    const records: ActivityRecord[] = [];
    let start = this.#ring.findIndex((r) => r.id > since);
    if (start < 0) start = this.#ring.length;
    let last = since;
    for (let i = start; i < this.#ring.length; i++) {
      const r = this.#ring[i];
      last = r.id;
      if (!typeMatches(r.type, q.type)) continue;
      records.push(r);
      if (records.length >= limit) {
        return { records, next: i + 1 < this.#ring.length ? last : null };
      }
    }
    return { records, next: null };
  }

  /** Calls `listener` with every new record until the returned function is called. */
  follow(listener: (rec: ActivityRecord) => void): () => void {
    this.#followers.add(listener);
    return () => this.#followers.delete(listener);
  }

  /** Closes the file; later records stay in memory only. Idempotent. */
  close(): void {
    // What was counted is written before the file closes.
    this.#fold.close();
    this.#file?.close();
    this.#file = undefined;
    this.#followers.clear();
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The records of the newest rotated file, so ids keep increasing after a rotation. */
async function lastOfRotated(path: string): Promise<ActivityRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(rotatedPath(path, 1));
  } catch {
    return [];
  }
  const last = parseRecord(text.trim().split("\n").at(-1) ?? "");
  return last ? [last] : [];
}

/** One line of a log file as a record, or undefined when it is not one (torn by a crash). */
function parseRecord(line: string): ActivityRecord | undefined {
  try {
    const parsed = ActivityRecord.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Text for the client commands' output: sizes in MiB, times as "5m ago", aligned
 * tables, and the chunk map of `p2p where`. Pure: strings in, strings out.
 *
 * ```ts
 * import { ago, mib, size, tableLines } from "./format.ts";
 *
 * console.assert(mib(3 * 1048576) === "3.0 MiB");
 * console.assert(size(200 * 1048576) === "200 MiB" && size(39) === "39 B");
 * console.assert(ago(Date.now() - 90_000) === "2m ago");
 * console.assert(tableLines(["A", "BB"], [["x", "y"]]).join("\n") === "A  BB\nx  y");
 * ```
 *
 * @module
 */
import { hasBit } from "../proto/bitfield.ts";
import { fromHex } from "../proto/ids.ts";
import { type ActivityRecord, shortId } from "../proto/control.ts";

/** A byte count in MiB with one decimal: `1.5 MiB`. */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** A byte count for people: `39 B`, `1.5 KiB`, `200 MiB`, `1.2 GiB` (one decimal below 10). */
export function size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 || v >= 10 ? 0 : 1;
  return `${v.toFixed(digits)} ${units[u]}`;
}

/** How long ago a time (ms since the epoch) was: `12s ago`, `5m ago`, `1.5h ago`. */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, (now - ms) / 1000);
  if (s < 60) return `${s.toFixed(0)}s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)}m ago`;
  return `${(s / 3600).toFixed(1)}h ago`;
}

/** The lines of a table: a head row and rows, columns padded to their widest cell. */
export function tableLines(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), ...rows.map(line)];
}

/**
 * A chunk map of `width` marks for a bitfield (`have`, hex) of `chunks` positions:
 * `█` where every position of the mark is held, `▒` where some are, `·` where none.
 */
export function chunkMap(have: string, chunks: number, width: number): string {
  const bits = fromHex(have);
  let map = "";
  for (let c = 0; c < width; c++) {
    const from = Math.floor((c * chunks) / width);
    const to = Math.floor(((c + 1) * chunks) / width);
    let held = 0;
    for (let i = from; i < to; i++) if (hasBit(bits, i)) held++;
    map += held === to - from ? "█" : held > 0 ? "▒" : "·";
  }
  return map;
}

/** A copy of `value` with the epoch-ms fields `keys` as ISO 8601 strings (JSON output). */
export function isoTimes<T extends object, K extends keyof T>(
  value: T,
  keys: K[],
): Omit<T, K> & Record<K, string | undefined> {
  const out: Record<string, unknown> = { ...value as Record<string, unknown> };
  for (const k of keys) {
    const ms = value[k];
    out[k as string] = typeof ms === "number" ? new Date(ms).toISOString() : undefined;
  }
  return out as Omit<T, K> & Record<K, string | undefined>;
}

/** Every 40- or 64-hex id in a text in its short form. */
function shortIds(text: string): string {
  return text.replace(/\b([0-9a-f]{64}|[0-9a-f]{40})\b/g, (id) => shortId(id));
}

/**
 * One readable line of an activity record: its time (`2026-01-01 10:00:01`), type and
 * fields as `key=value`, ids in their short form.
 */
export function logLine(r: ActivityRecord): string {
  const { id: _id, ts, type, ...rest } = r;
  const fields = Object.entries(rest).map(([k, v]) =>
    `${k}=${shortIds(typeof v === "string" ? v : JSON.stringify(v))}`
  );
  const time = ts.replace("T", " ").replace(/\.\d+Z$/, "");
  return `${time} ${type.padEnd(18)} ${fields.join(" ")}`.trimEnd();
}

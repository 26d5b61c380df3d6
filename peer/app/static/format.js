/**
 * Formatting for people: sizes, rates, durations, times, short ids and plain words
 * for the protocol's names (how a peer became known, how a holder was learnt).
 * Pure functions, no DOM.
 *
 * @module
 */

const MIB = 1024 * 1024;

/** `1.5 MiB`, `512 B`; `—` for what is not a number. */
export function fmtBytes(/** @type {number | undefined} */ n) {
  if (n === undefined || !Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/** Transfer rate of `bytes` in `seconds`, in MiB/s. */
export function fmtRate(
  /** @type {number} */ bytes,
  /** @type {number} */ seconds,
) {
  if (!(seconds > 0)) return "— MiB/s";
  const r = bytes / MIB / seconds;
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)} MiB/s`;
}

/** `<1 s`, `42 s`, `3 min 5 s`, `1 h 2 min`. */
export function fmtDuration(/** @type {number} */ seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 1) return "<1 s";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Seconds with two decimals when short (`0.42 s`), else as `fmtDuration`. */
export function fmtSeconds(/** @type {number} */ seconds) {
  if (!Number.isFinite(seconds)) return "—";
  return seconds < 10 ? `${seconds.toFixed(2)} s` : fmtDuration(seconds);
}

/** `just now`, `5 min ago`… for a time in ms since the epoch. */
export function fmtAgo(/** @type {number | undefined} */ ms) {
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) return "never";
  const s = (Date.now() - ms) / 1000;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** `14:03:22` for an ISO time (or the text itself when it is not one). */
export function fmtClock(/** @type {string} */ iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso ?? "");
  return d.toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
}

/** The first `n` characters of an id (the form tables print). */
export function shortId(/** @type {unknown} */ id, n = 8) {
  return typeof id === "string" && id.length > n ? id.slice(0, n) : String(id ?? "");
}

/** `1 chunk`, `3 chunks`. */
export function plural(
  /** @type {number} */ n,
  /** @type {string} */ one,
  many = `${one}s`,
) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Whole percent of `part` in `total` (100 for an empty total). */
export function percent(
  /** @type {number} */ part,
  /** @type {number} */ total,
) {
  if (!(total > 0)) return 100;
  return Math.min(100, Math.floor((100 * part) / total));
}

/** How a peer became known, in plain words (the control API's `PeerSource`). */
export const PEER_SOURCE_WORDS = /** @type {Record<string, string>} */ ({
  seed: "given at start",
  tracker: "from the tracker",
  exchange: "told by another peer",
  inbound: "connected to us",
  scan: "LAN scan",
});

/** How the holders of a payload were learnt (`WhereRow.via`), in plain words. */
export function viaWords(/** @type {string} */ via) {
  if (via === "self") return "this peer";
  if (via === "HAVE?") return "asked directly";
  if (via === "tracker") return "the tracker's copy";
  return via;
}

/** A name a browser can save a payload under: its own, or the id's start. */
export function fileName(
  /** @type {string | undefined} */ name,
  /** @type {string} */ id,
) {
  const base = (name ?? "").split(/[\\/]/).pop() ?? "";
  return base || `${id.slice(0, 16)}.bin`;
}

/**
 * What the peer did, in words: downloads, uploads, copies pushed or taken, peers
 * coming and going, and errors said as sentences. Routine traffic (peer list
 * exchanges, pieces sent, connections, queries) is folded into one line per run,
 * which opens to show it, or shown in full with "Show routine traffic".
 *
 * @module
 */
import { html, useState } from "./html.js";
import { fmtBytes, fmtClock, fmtSeconds, plural } from "./format.js";
import { activity, eventsState, labelOf, payloadInfo, plainIds } from "./state.js";

/** @typedef {import("./types.js").ActivityRecord} ActivityRecord */

/** Types of the background chatter people do not need to read one by one. */
const ROUTINE =
  /^(exchange|query\.|conn\.(open|close)|chunk\.(sent|received|pushed)|pingback|proxy\.forward|tracker\.announce|replicate\.pull)/;
/** Types of failures. */
const FAILURE =
  /(^error$|\.(error|fail|refused|reject|rejected|mismatch|spot_check_failed|unsigned)$|^seed\.fail)/;

/** What kind of record: `error`, `routine` or `event`. */
export function kindOf(/** @type {ActivityRecord} */ r) {
  if (FAILURE.test(r.type)) return "error";
  if (ROUTINE.test(r.type)) return "routine";
  return "event";
}

/** Routine records by what they are, in words: `3 piece transfers, 2 peer list swaps`. */
function routineWords(/** @type {ActivityRecord[]} */ rs) {
  /** @type {Map<string, { n: number, one: string, many: string }>} */
  const by = new Map();
  for (const r of rs) {
    const [one, many] = r.type.startsWith("exchange")
      ? ["peer list swap", "peer list swaps"]
      : r.type.startsWith("chunk.")
      ? ["piece transfer", "piece transfers"]
      : r.type.startsWith("conn.")
      ? ["connection change", "connection changes"]
      : r.type.startsWith("query.")
      ? ["question from a peer", "questions from peers"]
      : r.type.startsWith("tracker.")
      ? ["tracker update", "tracker updates"]
      : ["routine record", "routine records"];
    const e = by.get(one) ?? { n: 0, one, many };
    e.n++;
    by.set(one, e);
  }
  return [...by.values()].map((e) => plural(e.n, e.one, e.many)).join(", ");
}

/** A field as a string ("" when absent). */
function str(/** @type {unknown} */ v) {
  return v === undefined || v === null ? "" : String(v);
}

/** A payload's name, or its short id. */
function fileOf(/** @type {unknown} */ id) {
  const s = str(id);
  return payloadInfo(s).name || (s ? s.slice(0, 12) : "a file");
}

/** A peer's name, or its short id. */
function peerOf(/** @type {unknown} */ id) {
  return id ? labelOf(str(id)) : "a peer";
}

/** One record as a sentence. */
export function describe(/** @type {ActivityRecord} */ r) {
  const msg = plainIds(str(r.message ?? r.reason));
  switch (r.type) {
    case "peer.start":
      return "This peer started";
    case "peer.stop":
      return "This peer stopped";
    case "payload.put":
      return `Shared ${fileOf(r.payloadId)} (${fmtBytes(Number(r.size))})`;
    case "download.start":
      return `Started downloading ${fileOf(r.payloadId)}`;
    case "download.done":
      return `Downloaded ${fileOf(r.payloadId)}: ${fmtBytes(Number(r.bytes))} in ${
        fmtSeconds(Number(r.seconds))
      }`;
    case "download.fail":
      return `Download of ${fileOf(r.payloadId)} failed: ${msg}`;
    case "download.drop":
      return `Stopped fetching ${fileOf(r.payloadId)} from ${peerOf(r.source)}: ${msg}`;
    case "download.cancel":
      return `Download of ${fileOf(r.payloadId)} cancelled at ${Number(r.done ?? 0)} of ${
        Number(r.chunks ?? 0)
      } pieces: running it again resumes`;
    case "replicate.pull":
      return `Fetching a copy of ${fileOf(r.payloadId)} that the tracker asked this peer to keep`;
    case "download.refused":
      return `Did not download ${fileOf(r.payloadId)}: the store is full`;
    case "offer.accepted":
      return `${peerOf(r.from)} pushed a copy of ${fileOf(r.payloadId)} here`;
    case "offer.refused":
      return `Refused a copy of ${fileOf(r.payloadId)} from ${peerOf(r.from)}: ${msg}`;
    case "replicate.done":
      return `Pushed copies of ${fileOf(r.payloadId)} to other peers`;
    case "replicate.fail":
      return `Could not push a copy of ${fileOf(r.payloadId)} to ${peerOf(r.to)}: ${msg}`;
    case "conn.fail":
      return `Could not reach ${peerOf(r.peerId)} at ${str(r.address)}: ${msg}`;
    case "seed.fail":
      return `Could not reach the peer given at start, ${str(r.address)}: ${msg}`;
    case "exchange.fail":
      return `Could not swap peer lists with ${peerOf(r.with)}: ${msg}`;
    case "exchange.mismatch":
    case "replicate.mismatch":
      return `A different peer than expected answered${r.address ? ` at ${str(r.address)}` : ""}`;
    case "tracker.register":
      return "Registered with the tracker";
    case "tracker.error":
      return `The tracker could not be reached: ${msg}`;
    case "discover.start":
      return "Started looking for peers on the LAN";
    case "discover.done":
      return `Finished looking for peers on the LAN (${plural(Number(r.devices ?? 0), "device")})`;
    case "discover.peer":
      return `Found ${peerOf(r.peerId)} on the LAN`;
    case "discover.error":
      return `Looking for peers on the LAN failed: ${msg}`;
    case "control.refused":
      return `Refused a request to ${str(r.path)} (${str(r.code).replaceAll("_", " ")})`;
    case "chunk.rejected":
      return `A piece of ${fileOf(r.payloadId)} from ${peerOf(r.from)} was damaged and thrown away`;
    case "error":
      return `Something went wrong${r.during ? ` during ${str(r.during)}` : ""}: ${msg}`;
  }
  const rest = Object.entries(r)
    .filter(([k]) => !["id", "ts", "type"].includes(k))
    .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : str(v)}`)
    .join(", ");
  const words = r.type.replaceAll(".", " ").replaceAll("_", " ");
  return `${words[0].toUpperCase()}${words.slice(1)}${rest ? `: ${rest.slice(0, 200)}` : ""}`;
}

/**
 * The records as the list shows them (newest first): each run of routine records is
 * one group (unless `showRoutine`), and so is each run of the same event with the
 * same code (the refusals of a page's first requests before it logs in, say).
 *
 * @param {ActivityRecord[]} records
 * @param {boolean} showRoutine
 * @returns {{ kind: "routine" | "same" | "one", records: ActivityRecord[] }[]}
 */
export function groupRecords(records, showRoutine) {
  /** @type {{ kind: "routine" | "same" | "one", records: ActivityRecord[] }[]} */
  const out = [];
  for (const r of records) {
    const last = out.at(-1);
    const prev = last?.records.at(-1);
    if (!showRoutine && kindOf(r) === "routine") {
      if (last?.kind === "routine") last.records.push(r);
      else out.push({ kind: "routine", records: [r] });
    } else if (
      last && last.kind !== "routine" && prev && prev.type === r.type && r.code !== undefined &&
      prev.code === r.code
    ) {
      last.kind = "same";
      last.records.push(r);
    } else out.push({ kind: "one", records: [r] });
  }
  return out;
}

/** One record. */
function Item(/** @type {{ r: ActivityRecord }} */ { r }) {
  const k = kindOf(r);
  return html`
    <li data-testid="activity-row" data-type=${r.type} data-kind=${k}>
      <span class="time" title=${r.ts}>${fmtClock(r.ts)}</span>
      <span class=${`what${k === "error" ? " t-error" : ""}`} title=${JSON
        .stringify(r)}>${describe(r)}</span>
    </li>
  `;
}

/** The activity card. */
export function ActivityCard() {
  const [filter, setFilter] = useState("");
  const [routine, setRoutine] = useState(false);
  const f = filter.trim().toLowerCase();
  const records = activity.value.filter((r) =>
    !f || r.type.startsWith(f) || describe(r).toLowerCase().includes(f)
  );
  const items = groupRecords(records, routine).map((g) => {
    if (g.kind === "one") return html`<${Item} key=${g.records[0].id} r=${g.records[0]} />`;
    const first = g.records[0];
    const summary = g.kind === "routine"
      ? html`<span class="what muted">${routineWords(g.records)}</span>`
      : html`<span class=${`what${kindOf(first) === "error" ? " t-error" : ""}`}>${
        describe(first)
      } <span class="muted">(${g.records.length} times)</span></span>`;
    return html`
      <li class="routine" data-testid=${`activity-${g.kind}`} key=${`g${first.id}`}>
        <details>
          <summary><span class="time">${fmtClock(first.ts)}</span> ${summary}</summary>
          <ol class="activity">${g.records.map((r) => html`<${Item} key=${r.id} r=${r} />`)}</ol>
        </details>
      </li>
    `;
  });
  const errors = records.filter((r) => kindOf(r) === "error").length;
  return html`
    <section class="card" id="activity" aria-labelledby="activity-h">
      <div class="card-head">
        <h2 id="activity-h">Activity</h2>
        <span class=${`badge ${eventsState.value === "live" ? "ok" : "warn"}`}>${eventsState
          .value}</span>
      </div>
      <div class="inline-form">
        <div class="field grow">
          <label for="activity-filter">Filter</label>
          <input id="activity-filter" data-testid="activity-filter" type="search"
            autocomplete="off"
            spellcheck="false" placeholder="download, a name, an error…"
            value=${filter}
            onInput=${(/** @type {any} */ e) => setFilter(e.currentTarget.value)} />
        </div>
        <label class="check"><input type="checkbox" checked=${routine}
            onChange=${(/** @type {any} */ e) => setRoutine(e.currentTarget.checked)} />
            Show routine traffic</label>
      </div>
      <p class="muted small">${plural(records.length, "record")}${errors
        ? ` · ${plural(errors, "problem")}`
        : ""}</p>
      <ol class="activity">${items}</ol>
    </section>
  `;
}

/**
 * Small pieces the views share: a copy button, a colour per source (chunk map and
 * download chips), a source chip, and the action that gets a payload (one click: a
 * link that saves it under its name, or a download to this peer that then saves).
 *
 * @module
 */
import { html, useState } from "./html.js";
import { contentUrl } from "./api.js";
import { copyText, startDownload } from "./actions.js";
import { fileName, percent } from "./format.js";
import { labelOf } from "./state.js";

/** Colours for sources (fine on light and dark). */
const PALETTE = [
  "#2f6fde",
  "#e0712c",
  "#1f9d55",
  "#b44fd1",
  "#d23f6b",
  "#0e9aa7",
  "#c99a06",
  "#6b5bd6",
  "#7a8a1a",
  "#a0522d",
];
const colours = new Map([["tracker", "#8a94a6"]]);

/** The colour of a source (peerId, `tracker`, `local`), the same all along. */
export function colourOf(/** @type {string} */ id) {
  let c = colours.get(id);
  if (!c) {
    c = PALETTE[(colours.size - 1) % PALETTE.length];
    colours.set(id, c);
  }
  return c;
}

/** A source's colour and name. */
export function SourceChip(
  /** @type {{ id: string, n?: number }} */ { id, n },
) {
  return html`
    <span
      class="chip"><span class="swatch" style=${{
        "--sw": colourOf(id),
      }} aria-hidden="true"></span>${labelOf(id)}${n === undefined ? "" : ` ${n}`}</span>
  `;
}

/** A button that copies `text` and says so for a moment. */
export function CopyButton(
  /** @type {{ text: string, label?: string, testid?: string, aria?: string }} */ p,
) {
  const [done, setDone] = useState(false);
  const click = async () => {
    if (await copyText(p.text)) {
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    }
  };
  return html`
    <button type="button" class=${`btn small ghost${done ? " copy-done" : ""}`}
      data-testid=${p.testid} aria-label=${p.aria}
      onClick=${click}>${done ? "Copied ✓" : p.label ?? "Copy"}</button>
  `;
}

/**
 * The one action that gets a payload to the browser: complete here, a link that
 * saves it under its name; otherwise a button that has this peer download it (then
 * saves it). It reads Resume only for a payload the owner put or got here (the
 * store's `pinned`), never for the copies other peers pushed here.
 *
 * @param {{ row: import("./types.js").PayloadRow, big?: boolean }} p
 */
export function GetAction({ row, big = false }) {
  const name = row.name || row.id.slice(0, 12);
  const cls = `btn primary${big ? "" : " small"}`;
  if (row.complete) {
    return html`
      <a class=${cls} href=${contentUrl(row.id)} download=${fileName(
        row.name,
        row.id,
      )}
        data-testid="payload-save" aria-label=${`Download ${name}`}>Download</a>
    `;
  }
  const d = row.download;
  if (d?.running) {
    const pct = d.progress ? percent(d.progress.bytes, d.progress.size) : 0;
    return html`<button type="button" class=${cls} disabled data-testid="payload-download">
      Downloading ${pct}%</button>`;
  }
  const resume = row.held > 0 && row.pinned;
  return html`
    <button type="button" class=${cls} data-testid="payload-download"
      aria-label=${`${resume ? "Resume" : "Download"} ${name}`}
      onClick=${() => startDownload(row.id)}>${resume ? "Resume" : "Download"}</button>
  `;
}

/** A progress bar with its percentage (indeterminate while `pct` is undefined). */
export function Bar(
  /** @type {{ pct?: number, label: string, done?: boolean }} */ p,
) {
  return html`
    <progress max="100" value=${p.pct} aria-label=${p.label}
      class=${p.done ? "done" : ""}></progress>
  `;
}

/**
 * The chunk map: for one payload, which peer holds which piece, one row per holder
 * drawn on a canvas (thousands of pieces stay cheap). This peer's row fills in live
 * while a download runs here, each piece in the colour of the peer it came from.
 *
 * @module
 */
import { html, useEffect, useRef, useState } from "./html.js";
import * as api from "./api.js";
import { messageOf } from "./api.js";
import { fmtBytes, plural, viaWords } from "./format.js";
import { chunkSources, downloads, labelOf, mapFor, payloadInfo, self } from "./state.js";
import { colourOf, SourceChip } from "./ui.js";

/** The bytes of a hex bitfield (MSB first). */
function bitsFromHex(/** @type {string} */ hex) {
  const out = new Uint8Array(Math.floor(hex.length / 2));
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16) || 0;
  }
  return out;
}

/** Whether position `i` is set. */
function hasBit(/** @type {Uint8Array} */ bits, /** @type {number} */ i) {
  return (((bits[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) === 1;
}

/**
 * One holder's pieces on a canvas: `colourAt(i)` is the colour of piece `i`, or
 * undefined when it is missing.
 *
 * @param {{ chunks: number, colourAt: (i: number) => string | undefined, label: string }} p
 */
function Cells({ chunks, colourAt, label }) {
  const ref = useRef(/** @type {HTMLCanvasElement | null} */ (null));
  const perRow = chunks <= 64 ? chunks : chunks <= 512 ? 64 : 128;
  const rows = Math.max(1, Math.ceil(chunks / Math.max(1, perRow)));
  const cell = chunks <= 64 ? 12 : chunks <= 512 ? 8 : 5;
  useEffect(() => {
    const c = ref.current?.getContext("2d");
    if (!c) return;
    const missing = getComputedStyle(document.documentElement).getPropertyValue("--cell-off")
      .trim() || "#d8dde6";
    c.clearRect(0, 0, perRow * cell, rows * cell);
    for (let i = 0; i < chunks; i++) {
      c.fillStyle = colourAt(i) ?? missing;
      c.fillRect(
        (i % perRow) * cell,
        Math.floor(i / perRow) * cell,
        cell - 1,
        cell - 1,
      );
    }
  });
  return html`
    <canvas ref=${ref} class="cells-canvas" width=${perRow * cell}
      height=${rows * cell}
      role="img" aria-label=${label}></canvas>
  `;
}

/** The chunk map card, for the payload `mapFor` names. */
export function ChunkMapCard() {
  const id = mapFor.value;
  const [where, setWhere] = useState(
    /** @type {{ id: string, data?: import("./types.js").Where, error?: string } | null} */ (null),
  );
  const [tick, setTick] = useState(0);
  const running = id ? downloads.value.get(id)?.running : false;
  useEffect(() => {
    if (!id) return;
    let gone = false;
    api.getWhere(id).then(
      (data) => !gone && setWhere({ id, data }),
      (err) => !gone && setWhere({ id, error: messageOf(err) }),
    );
    return () => {
      gone = true;
    };
  }, [id, tick, running]);
  if (!id) {
    return html`
      <section class="card" id="chunkmap" aria-labelledby="chunkmap-h">
        <div class="card-head">
          <h2 id="chunkmap-h">Chunk map</h2>
        </div>
        <div data-testid="chunk-map" class="chunk-map">
          <p class="empty">
              Choose “Chunk map” on a file, or start a download.</p>
        </div>
      </section>
    `;
  }
  const info = payloadInfo(id);
  const w = where?.id === id ? where : null;
  const live = chunkSources.value.get(id) ?? new Map();
  const me = self.value?.peerId ?? "";
  const chunks = w?.data?.chunks ?? info.chunks ??
    downloads.value.get(id)?.progress?.chunks ?? 0;
  /** @type {import("./types.js").WhereRow[]} */
  const rows = [...(w?.data?.rows ?? [])];
  if (me && !rows.some((r) => r.peerId === me)) {
    rows.push({ peerId: me, address: "", have: "", count: 0, via: "self" });
  }
  rows.sort((a, b) =>
    Number(b.peerId === me) - Number(a.peerId === me) || b.count - a.count ||
    a.peerId.localeCompare(b.peerId)
  );
  const legend = new Set();
  const body = rows.map((r) => {
    const bits = bitsFromHex(r.have);
    const isSelf = r.peerId === me;
    let count = 0;
    /** @type {(string | undefined)[]} */
    const colours = [];
    for (let i = 0; i < chunks; i++) {
      const src = isSelf && live.has(i) ? live.get(i) : hasBit(bits, i) ? r.peerId : undefined;
      if (src) {
        count++;
        legend.add(src);
      }
      colours.push(src ? colourOf(src) : undefined);
    }
    const who = labelOf(r.peerId, r.name);
    return html`
      <div class="map-row" data-peer-id=${r.peerId}>
        <div class="map-label">
          <span class="who" title=${r.address}>${who}${r.via && r.via !== "self"
            ? html`<span class="muted small"> · ${viaWords(r.via)}</span>`
            : null}</span>
          <span class="count">${count}/${chunks}</span>
        </div>
        <${Cells} chunks=${chunks} colourAt=${(/** @type {number} */ i) => colours[i]}
          label=${`${who} holds ${count} of ${chunks} pieces`} />
      </div>
    `;
  });
  return html`
    <section class="card" id="chunkmap" aria-labelledby="chunkmap-h">
      <div class="card-head">
        <h2 id="chunkmap-h">Chunk map</h2>
        <button type="button" class="btn small ghost"
          onClick=${() => setTick(tick + 1)}>Refresh</button>
      </div>
      <div data-testid="chunk-map" class="chunk-map" data-payload-id=${id}>
          <div class="chunk-map-head">
            <span class="title">${info.name || "(unnamed file)"}</span>
            <code class="muted small" title=${id}>${id.slice(0, 12)}</code>
            <span class="muted small">${plural(
              chunks,
              "piece",
            )}${info.size !== undefined ? ` · ${fmtBytes(info.size)}` : ""}</span>
          </div>
          ${w?.error ? html`<p class="result bad">Chunk map unavailable: ${w.error}</p>` : null}
          ${!w ? html`<p class="muted">Asking who holds which piece…</p>` : null}
          <ul class="legend" aria-label="Colours">${[...legend].map((s) =>
            html`
              <li>
                <${SourceChip} id=${s} />
              </li>
            `
          )}</ul>
          ${body}
        </div>
    </section>
  `;
}

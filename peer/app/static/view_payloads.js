/**
 * The payloads: the list of what is here and on the network (one action per row that
 * gets it to the browser), and one payload opened by its share link `#/payloads/ID`
 * with that link, a QR code of it, and its chunk map.
 *
 * @module
 */
import { html, useMemo } from "./html.js";
import { PAYLOAD_ID } from "./api.js";
import { shareLink, startDownload } from "./actions.js";
import { fmtBytes, percent, plural } from "./format.js";
import qrcode from "./vendor/qrcode-generator/qrcode.mjs";
import { labelOf, mapFor, payloadRows, payloadsNote } from "./state.js";
import { CopyButton, GetAction } from "./ui.js";

/** @typedef {import("./types.js").PayloadRow} PayloadRow */

/** How much of a payload is here, in words: `3 of 10 pieces here · 30%`. */
function heldWords(/** @type {PayloadRow} */ p) {
  if (p.complete) return "all here";
  if (!p.here) return "not here yet";
  const d = p.download;
  if (d?.running && d.progress) {
    const pct = percent(d.progress.bytes, d.progress.size);
    return `${p.held} of ${p.chunks} pieces here · ${pct}%`;
  }
  return `${p.held} of ${p.chunks} pieces here`;
}

/** Who holds a payload, in words. */
function holdersWords(/** @type {PayloadRow} */ p) {
  const n = p.holders.length || (p.here ? 1 : 0);
  return n === 0 ? "no holder known" : `on ${plural(n, "peer")}`;
}

/** One payload in the list. */
function PayloadItem(/** @type {{ p: PayloadRow }} */ { p }) {
  const pct = p.chunks ? (100 * p.held) / p.chunks : 0;
  return html`
    <li class="payload" data-testid="payload-row" data-payload-id=${p.id}>
      <a class="payload-main" href=${`#/payloads/${p.id}`} aria-label=${`Open ${p.name || p.id}`}>
        <span class="title">${p.name || "(unnamed)"}</span>
        <span class="sub">${fmtBytes(p.size)} · ${holdersWords(p)}</span>
        <span class="sub" data-testid="payload-held">${heldWords(p)}</span>
        <span class=${`meter${p.complete ? " full" : ""}`} aria-hidden="true">
            <span style=${{ width: `${pct}%` }}></span></span>
      </a>
      <div class="actions">
        <${GetAction} row=${p} />
      </div>
    </li>
  `;
}

/** The list of payloads. */
export function PayloadsCard() {
  const rows = payloadRows.value;
  return html`<section class="card" id="payloads" aria-labelledby="payloads-h">
    <div class="card-head">
      <h2 id="payloads-h">Files</h2>
      <span class="muted small" aria-live="polite">${payloadsNote.value}</span>
    </div>
    ${
    rows.length
      ? html`<ul class="payloads">${
        rows.map((p) => html`<${PayloadItem} key=${p.id} p=${p} />`)
      }</ul>`
      : html`<p class="empty">No files yet: share one above, or wait for the network.</p>`
  }
  </section>`;
}

/** A QR code of `text` as SVG (one path of dark modules), drawn on the page. */
function QrCode(/** @type {{ text: string }} */ { text }) {
  const { size, d } = useMemo(() => {
    const qr = qrcode(0, "M");
    qr.addData(text, "Byte");
    qr.make();
    const n = qr.getModuleCount();
    let path = "";
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        if (qr.isDark(r, c)) path += `M${c + 4} ${r + 4}h1v1h-1z`;
      }
    }
    return { size: n + 8, d: path };
  }, [text]);
  return html`
    <svg class="qr" data-testid="share-qr" viewBox=${`0 0 ${size} ${size}`}
      role="img" aria-label="QR code of the share link"
      shape-rendering="crispEdges">
      <rect width=${size} height=${size} fill="#fff" />
      <path d=${d} fill="#000" />
    </svg>
  `;
}

/** One payload, as its share link opens it. */
export function PayloadDetail(/** @type {{ id: string }} */ { id }) {
  if (!PAYLOAD_ID.test(id)) {
    return html`
      <section class="card" data-testid="payload-detail">
        <p
          class="result bad">The link names '${id.slice(
            0,
            80,
          )}', which is not a payloadId (64 hex
              digits). <a href="#/payloads">See all files</a></p>
      </section>
    `;
  }
  const p = payloadRows.value.find((r) => r.id === id);
  const link = shareLink(id);
  return html`
    <section class="card detail" data-testid="payload-detail"
      data-payload-id=${id}
      aria-labelledby="detail-h">
      <div class="card-head">
        <h2 id="detail-h">${p ? p.name || "(unnamed)" : "A shared file"}</h2>
        <a class="btn small ghost" href="#/payloads">All files</a>
      </div>
      <div class="detail-grid">
        <div class="stack">
            ${p
              ? html`
                <p>${fmtBytes(p.size)} · ${plural(
                  p.chunks,
                  "piece",
                )} · ${holdersWords(p)}</p>
                <p class="muted small">${heldWords(p)}${p.holders.length
                  ? ` · held by ${p.holders.map((h) => labelOf(h.peerId, h.name)).join(", ")}`
                  : ""}</p>
                <div class="actions start"><${GetAction} row=${p} big=${true} />
                          <button type="button" class="btn small" onClick=${() =>
                            mapFor.value = id}>
                            Chunk map</button></div>
              `
              : html`
                <p>This file is not known to this peer yet. It can still ask the network for it.</p>
                <div class="actions start"><button type="button" class="btn primary"
                          data-testid="payload-download" onClick=${() =>
                            startDownload(id)}>Download</button></div>
              `}
            <div class="field">
              <label for="share-link">Share link</label>
              <div class="id-line">
                <input id="share-link" data-testid="share-link" readonly value=${link}
                  onFocus=${(/** @type {any} */ e) => e.currentTarget.select()} />
                <${CopyButton} text=${link} aria="Copy the share link" />
              </div>
            </div>
            <p class="muted small">Id <code>${id}</code></p>
          </div>
        <${QrCode} text=${link} />
      </div>
    </section>
  `;
}

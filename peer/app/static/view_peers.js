/**
 * The peers this peer knows, in plain words (how each became known, when it was
 * last seen, whether it answers), with a link to each one's app; and the LAN scan.
 *
 * @module
 */
import { html, useState } from "./html.js";
import { PEER_ID } from "./api.js";
import { scanLan, scanState } from "./actions.js";
import { fmtAgo, fmtSeconds, PEER_SOURCE_WORDS, plural } from "./format.js";
import { labelOf, peers } from "./state.js";

/** @typedef {import("./types.js").Peer} Peer */

/** One known peer. */
function PeerItem(/** @type {{ p: Peer }} */ { p }) {
  const how = p.sources.map((s) => PEER_SOURCE_WORDS[s] ?? s).join(", ") || "—";
  return html`
    <tr data-testid="peer-row" data-peer-id=${p.peerId}>
      <td class="cell-name" data-label="Name">
        <div>
          <span class="title">${p.name || "(unnamed)"}</span>
          <span class="sub" title=${p.peerId}>${p.peerId.slice(
            0,
            12,
          )}</span></div>
      </td>
      <td data-label="Address"><code>${p.host}:${p.ports.chunk ??
        "?"}</code></td>
      <td data-label="Known from">${how}</td>
      <td data-label="Last seen" title=${p.lastSeen ? new Date(p.lastSeen).toLocaleString() : ""}>
          ${fmtAgo(p.lastSeen)}</td>
      <td class="num" data-label="Round trip">${p.rttMs !== undefined
        ? `${Math.round(p.rttMs)} ms`
        : "—"}</td>
      <td data-label="State"><span class=${`badge ${p.stale ? "warn" : "ok"}`}
          title=${p.stale ? plural(p.failures, "failed contact") : ""}>${p.stale
            ? "not answering"
            : "online"}</span></td>
      <td class="cell-actions">
        <div class="actions">${PEER_ID.test(p.peerId)
          ? html`
            <a class="btn small" href=${`/_p2p/peers/${p.peerId}/`}
              aria-label=${`Open the app of ${p.name || p.peerId.slice(0, 8)}`}>Open its app</a>
          `
          : null}</div>
      </td>
    </tr>
  `;
}

/** A folded list of lines under a title; nothing when there are none. */
function Folded(
  /** @type {{ title: string, lines: string[] }} */ { title, lines },
) {
  if (!lines.length) return null;
  return html`
    <details class="small">
      <summary>${title}</summary>
      <ul class="list-plain">${lines.map((l) => html`<li>${l}</li>`)}</ul>
    </details>
  `;
}

/** The result of the last LAN scan. */
function ScanResult() {
  const s = scanState.value;
  if (s.running) {
    return html`<div class="result" aria-live="polite"><span class="spinner" aria-hidden="true">
      </span>Scanning ${s.range || "this peer's networks"}…</div>`;
  }
  if (s.error) {
    return html`
      <div class="result bad" aria-live="polite">
        <p>Scan failed: ${s.error}</p>
      </div>
    `;
  }
  const r = s.report;
  if (!r) return null;
  const fresh = r.found.filter((f) => f.change === "new").length;
  return html`<div class="result ok" aria-live="polite">
    <p class="result-title">Found ${plural(r.found.length, "peer")}${
    fresh ? ` (${fresh} new)` : ""
  } in ${fmtSeconds(r.seconds)}</p>
    <p class="muted small">${(r.ranges ?? []).join(", ")}: ${
    plural(r.devices ?? 0, "device")
  } answered, ${r.probed ?? 0} asked whether they run p2p.${
    (r.devices ?? 0) === 0
      ? " Only devices that answer the network's address sweep are listed."
      : ""
  }</p>
    ${
    r.devicesError ? html`<p class="small">Listing the devices failed: ${r.devicesError}</p>` : null
  }
    ${
    r.found.length
      ? html`<ul class="list-plain small">${
        r.found.map((f) =>
          html`<li><b>${f.name || f.peerId.slice(0, 8)}</b> at ${f.host}${
            f.change === "new" ? " (new)" : f.change === "moved" ? " (moved)" : ""
          }</li>`
        )
      }</ul>`
      : null
  }
    <${Folded} title=${`${plural((r.stale ?? []).length, "peer")} no longer answering`}
      lines=${(r.stale ?? []).map((x) => `${labelOf(x.peerId)} at ${x.address}: ${x.reason}`)} />
    <${Folded} title=${`${plural((r.rejected ?? []).length, "device")} not taken`}
      lines=${(r.rejected ?? []).map((x) => `${x.address}: ${x.reason}`)} />
  </div>`;
}

/** The peers card. */
export function PeersCard() {
  const [range, setRange] = useState("");
  const list = [...peers.value.values()].sort((a, b) =>
    Number(a.stale) - Number(b.stale) ||
    (a.name ?? "").localeCompare(b.name ?? "") ||
    a.peerId.localeCompare(b.peerId)
  );
  return html`<section class="card" id="peers" aria-labelledby="peers-h">
    <div class="card-head"><h2 id="peers-h">Peers</h2>
      <span class="muted small">${plural(list.filter((p) => !p.stale).length, "peer")} online</span>
    </div>
    ${
    list.length
      ? html`
        <div class="table-wrap">
          <table class="table responsive">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Address</th>
                <th scope="col">Known from</th>
                <th scope="col">Last seen</th>
                <th scope="col" class="num">Round trip</th>
                <th scope="col">State</th>
                <th scope="col"><span class="visually-hidden">App</span></th>
              </tr>
            </thead>
            <tbody>${list.map((p) => html`<${PeerItem} key=${p.peerId} p=${p} />`)}</tbody>
          </table>
        </div>
      `
      : html`
        <p
          class="empty">No peers known yet. Scan the LAN, or start peers with --peer.</p>
      `
  }
    <form class="inline-form" novalidate onSubmit=${(
    /** @type {Event} */ e,
  ) => {
    e.preventDefault();
    scanLan(range.trim());
  }}>
      <div class="field grow">
        <label for="scan-range">Look for peers on the LAN <span class="muted small">
          (a range such as 198.51.100.0/24; empty: this peer's networks)</span></label>
        <input id="scan-range" type="text" autocomplete="off" spellcheck="false" maxlength="64"
          value=${range} onInput=${(/** @type {any} */ e) => setRange(e.currentTarget.value)} />
      </div>
      <button type="submit" class="btn" disabled=${scanState.value.running}>
        ${scanState.value.running ? "Scanning…" : "Scan"}</button>
    </form>
    <${ScanResult} />
  </section>`;
}

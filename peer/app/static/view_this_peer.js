/**
 * This peer's diagnostics: id, version, address, ports, tracker, store and counters.
 * On its own tab, out of the way of what people come to do.
 *
 * @module
 */
import { html } from "./html.js";
import { fmtAgo, fmtBytes, plural } from "./format.js";
import { self } from "./state.js";
import { CopyButton } from "./ui.js";

/** The tracker's state, in words. */
function TrackerLine(
  /** @type {{ t: import("./types.js").Tracker | null }} */ { t },
) {
  if (!t) return html`<span class="muted">none (peer to peer only)</span>`;
  return html`
    <code>${t.url}</code>${" "}<span
      class=${`badge ${t.ok ? "ok" : "bad"}`}>${t.ok
        ? "connected"
        : "not reachable"}</span>${t.lastContact
        ? html`<span class="muted small"> · last answer ${fmtAgo(t.lastContact)}</span>`
        : null}${!t.ok && t.lastError ? html`<div class="small muted">${t.lastError}</div>` : null}
  `;
}

/** The card. */
export function ThisPeerCard() {
  const s = self.value;
  if (!s) {
    return html`
      <section class="card" id="this-peer">
        <h2>This peer</h2>
        <p class="muted">Waiting for the peer's status…</p>
      </section>
    `;
  }
  const ports = Object.entries(s.ports).map(([k, v]) => `${k} ${v}`).join(" · ") || "—";
  return html`
    <section class="card" id="this-peer" aria-labelledby="this-peer-h">
      <div class="card-head">
        <h2 id="this-peer-h">This peer</h2>
      </div>
      <dl class="facts">
          <dt>Name</dt><dd>${s.name || "(unnamed)"}</dd>
          <dt>Peer ID</dt>
          <dd class="id-line"><code data-testid="this-peer-id">${s
            .peerId}</code>
            <${CopyButton} text=${s.peerId} aria="Copy the peer id" /></dd>
          <dt>Version</dt><dd>${s.version}</dd>
          <dt>Address</dt><dd title=${s.dataDir ? `Data folder: ${s.dataDir}` : ""}>${s.host}</dd>
          <dt>Ports</dt><dd>${ports}</dd>
          <dt>Tracker</dt><dd><${TrackerLine} t=${s.tracker} /></dd>
          <dt>Files</dt><dd>${s.payloads} (${s.completePayloads} complete)</dd>
          <dt>Stored</dt><dd>${fmtBytes(s.storedBytes)}</dd>
          <dt>Peers</dt><dd>${s.knownPeers} known · ${plural(
            s.connections,
            "connection",
          )}</dd>
          <dt>Downloads</dt><dd>${s.downloads.length
            ? `${s.downloads.length} running`
            : "none running"}</dd>
          ${s.memory
            ? html`
              <dt>Memory</dt>
              <dd>${fmtBytes(s.memory.rss)}</dd>
            `
            : null}
        </dl>
    </section>
  `;
}

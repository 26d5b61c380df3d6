/**
 * The p2p peer's built-in web app: files first (share one, get one, see what is here
 * and on the network), then peers, activity and this peer's diagnostics, each on a
 * tab. Built from Preact components with htm and signals (vendored in `vendor/`, no
 * build step); `api.js` calls the control API, `state.js` holds the signals, one
 * `view_*.js` per panel.
 *
 * Routes live in the hash, so a share link `#/payloads/ID` opens the page on that
 * payload, at `/` of a peer as under `/_p2p/peers/{peerId}/` of another.
 *
 * @module
 */
import { html, render } from "./html.js";
import { followEvents, setUnauthorizedHandler } from "./api.js";
import {
  addRecord,
  clearError,
  conn,
  error,
  eventsState,
  needLogin,
  parseRoute,
  payloadsPoll,
  peersPoll,
  refreshAll,
  refreshStartedHere,
  route,
  self,
  statusPoll,
} from "./state.js";
import { fmtClock } from "./format.js";
import { UploadCard } from "./view_upload.js";
import { PayloadDetail, PayloadsCard } from "./view_payloads.js";
import { DownloadsCard } from "./view_downloads.js";
import { ChunkMapCard } from "./view_chunkmap.js";
import { PeersCard } from "./view_peers.js";
import { ActivityCard } from "./view_activity.js";
import { ThisPeerCard } from "./view_this_peer.js";
import { LoginDialog } from "./view_login.js";

/** The tabs: hash, label. */
const TABS = [
  ["payloads", "Files"],
  ["peers", "Peers"],
  ["activity", "Activity"],
  ["peer", "This peer"],
];

/**
 * Room for the search box every page will have (a later change fills it): a named
 * slot in the header, empty for now.
 */
export function SearchSlot() {
  return html`<div class="search-slot" data-slot="search" data-testid="search-slot"></div>`;
}

/** The header: who this is, whether it answers, the search slot and the tabs. */
function Header() {
  const s = self.value;
  const c = conn.value;
  const tab = route.value.tab;
  // Under /_p2p/peers/{peerId}/ this page is another peer's, reached through this one.
  const via = /^\/_p2p\/peers\/[0-9a-f]+\//.test(location.pathname);
  return html`
    <header class="topbar">
      <div class="topbar-inner">
        <div class="brand">
          <svg class="logo" viewBox="0 0 32 32" aria-hidden="true">
            <circle cx="8" cy="16" r="5" />
            <circle cx="24" cy="8" r="4" />
            <circle cx="24" cy="24" r="4" />
            <path d="M12.5 14 20 9.5M12.5 18 20 22.5M24 12v8" />
          </svg>
          <h1><span class="muted">p2p ·</span> <span data-testid="peer-name"
              data-peer-id=${s?.peerId}>${s ? s.name || s.peerId.slice(0, 8) : "…"}</span></h1>
        </div>
        <div class="topbar-status">
            ${via
              ? html`<span class="via">through another peer · <a href="/">your peer</a></span>`
              : null}
            <span class=${`badge ${c.ok ? "ok" : c.text === "connecting…" ? "" : "bad"}`}
              role="status" title=${c.detail}>${c.text}</span>
          </div>
      </div>
      <${SearchSlot} />
      <nav class="tabs" aria-label="Sections">
          ${TABS.map(([id, label]) =>
            html`
              <a href=${`#/${id}`} class=${tab === id ? "active" : ""}
                aria-current=${tab === id
                  ? "page"
                  : undefined} data-testid=${`tab-${id}`}>${label}</a>
            `
          )}
        </nav>
    </header>
  `;
}

/** The error banner. */
function ErrorBanner() {
  const e = error.value;
  if (!e) return null;
  return html`
    <div class="error-banner" role="alert">
      <div class="error-inner">
        <span class="error-time">${fmtClock(e.time)}</span>
        <p data-testid="error">${e.message}</p>
        <button type="button" class="icon-btn" aria-label="Dismiss the error"
          onClick=${() => clearError()}>✕</button>
      </div>
    </div>
  `;
}

/** The page. */
function App() {
  const { tab, id } = route.value;
  let body;
  if (tab === "peers") body = html`<${PeersCard} />`;
  else if (tab === "activity") body = html`<${ActivityCard} />`;
  else if (tab === "peer") body = html`<${ThisPeerCard} />`;
  else {
    body = html`
      ${id ? html`<${PayloadDetail} id=${id} />` : null}
            <div class="columns">
        <div class="col-main">
          <${UploadCard} />
          <${PayloadsCard} />
        </div>
        <div class="col-side">
          <${DownloadsCard} />
          <${ChunkMapCard} />
        </div>
      </div>
    `;
  }
  return html`
    <a class="skip" href="#main" onClick=${(/** @type {Event} */ e) => {
      e.preventDefault();
      document.getElementById("main")?.focus();
    }}>Skip to content</a>
    <${Header} />
    <${ErrorBanner} />
    <main id="main" tabindex="-1" data-tab=${tab}>${body}</main>
    <footer class="footer muted small">p2p ${self.value?.version ?? ""}</footer>
    <${LoginDialog} />
  `;
}

/** Starts the page: renders it, follows the hash, polls the peer, follows its events. */
function start() {
  setUnauthorizedHandler(() => {
    needLogin.value = true;
  });
  globalThis.addEventListener("hashchange", () => {
    route.value = parseRoute(location.hash);
    if (route.value.id) globalThis.scrollTo({ top: 0 });
  });
  const root = document.getElementById("app");
  if (!root) throw new Error("Missing element '#app'");
  root.replaceChildren();
  render(html`<${App} />`, root);
  let stopEvents = () => {};
  const follow = () => {
    stopEvents();
    stopEvents = followEvents(addRecord, (s) => eventsState.value = s);
  };
  follow();
  statusPoll.start().then(() => {
    peersPoll.start();
    payloadsPoll.start();
    refreshStartedHere().catch(() => undefined);
  });
  // After a login the event stream starts again (it had been refused).
  let asked = false;
  needLogin.subscribe((v) => {
    if (asked && !v) follow();
    asked = v;
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshAll();
  });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else start();

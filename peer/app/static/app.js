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
import { html, render, useRef, useSignal } from "./html.js";
import * as api from "./api.js";
import { contentUrl, followEvents, messageOf, setUnauthorizedHandler } from "./api.js";
import { startDownload } from "./actions.js";
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
  route,
  self,
  statusPoll,
} from "./state.js";
import { fileName, fmtBytes, fmtClock } from "./format.js";
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

/** Wait after the last key before a search is sent. */
const SEARCH_DEBOUNCE_MS = 250;

/**
 * The search box in the header of every page: results update as the user types
 * (debounced, an older search cancelled by a newer one), each with its snippet (the
 * matched words marked), type, size and holders, and one click that gets the file
 * (a link when it is complete here, else this peer downloads it and the browser saves
 * it). Peers that did not answer in time are named under the results.
 */
export function SearchSlot() {
  const q = useSignal("");
  const answer = useSignal(/** @type {import("./types.js").SearchAnswer | null} */ (null));
  const problem = useSignal("");
  const busy = useSignal(false);
  const timer = useRef(/** @type {number | undefined} */ (undefined));
  const pending = useRef(/** @type {AbortController | null} */ (null));
  const run = (/** @type {string} */ text) => {
    pending.current?.abort();
    if (text.trim() === "") {
      answer.value = null;
      problem.value = "";
      busy.value = false;
      return;
    }
    const ctrl = new AbortController();
    pending.current = ctrl;
    busy.value = true;
    api.search(text, 20, ctrl.signal).then((a) => {
      if (ctrl.signal.aborted) return;
      answer.value = a;
      problem.value = "";
    }, (err) => {
      if (ctrl.signal.aborted) return;
      answer.value = null;
      problem.value = messageOf(err);
    }).finally(() => {
      if (!ctrl.signal.aborted) busy.value = false;
    });
  };
  const onInput = (/** @type {Event} */ e) => {
    q.value = /** @type {HTMLInputElement} */ (e.target).value;
    clearTimeout(timer.current);
    timer.current = setTimeout(() => run(q.value), SEARCH_DEBOUNCE_MS);
  };
  const a = answer.value;
  return html`
    <div class="search-slot" data-slot="search" data-testid="search-slot">
      <form class="search-box" role="search" onSubmit=${(/** @type {Event} */ e) => {
        e.preventDefault();
        clearTimeout(timer.current);
        run(q.value);
      }}>
        <input type="search" placeholder="Search files on the network…" aria-label="Search"
          data-testid="search-input" value=${q.value} onInput=${onInput} maxlength="1024" />
        ${busy.value ? html`<span class="muted small" aria-live="polite">searching…</span>` : null}
      </form>
      ${problem.value
        ? html`<p class="small search-problem" role="alert" data-testid="search-error">${problem.value}</p>`
        : null}
      ${a ? html`<${SearchResults} answer=${a} />` : null}
    </div>
  `;
}

/** The hits of a search and the peers that did not answer. */
function SearchResults(
  /** @type {{ answer: import("./types.js").SearchAnswer }} */ { answer },
) {
  const here = self.value?.peerId;
  return html`
    <div class="search-results" data-testid="search-results">
      ${answer.hits.length === 0
        ? html`<p class="muted small" data-testid="search-empty">Nothing matches.</p>`
        : html`<ul>${answer.hits.map((h) => html`<${SearchHitRow} hit=${h} here=${here} />`)}</ul>`}
      ${answer.missing.length > 0
        ? html`<p class="muted small" data-testid="search-missing">Not searched: ${
          answer.missing
            .map((m) => m.name || m.peerId.slice(0, 12)).join(", ")
        }</p>`
        : null}
    </div>
  `;
}

/** One hit: name, snippet, type, size, holders and the one click that gets it. */
function SearchHitRow(
  /** @type {{ hit: import("./types.js").SearchHit, here?: string }} */ { hit, here },
) {
  const name = hit.name || hit.payloadId.slice(0, 12);
  const heldHere = hit.holders.some((x) => x.peerId === here);
  const holders = hit.holders.map((x) =>
    x.peerId === here ? "this peer" : x.name || x.peerId.slice(0, 8)
  );
  return html`
    <li class="search-hit" data-testid="search-hit" data-payload-id=${hit.payloadId}>
      <div class="search-hit-head">
        <a href=${`#/payloads/${hit.payloadId}`} class="search-hit-name">${name}</a>
        <span class="muted small">${hit.type} · ${fmtBytes(hit.size)}</span>
        ${heldHere
          ? html`
            <a class="btn small primary" href=${contentUrl(hit.payloadId)}
              download=${fileName(hit.name, hit.payloadId)} data-testid="search-get"
              aria-label=${`Download ${name}`}>Download</a>
          `
          : html`
            <button type="button" class="btn small primary" data-testid="search-get"
              aria-label=${`Download ${name}`}
              onClick=${() => startDownload(hit.payloadId)}>Download</button>
          `}
      </div>
      <p class="small search-snippet" data-testid="search-snippet">${hit.snippet.map((p) =>
        p.mark ? html`<mark>${p.text}</mark>` : p.text
      )}</p>
      <p class="muted small" data-testid="search-holders">Held by ${holders.join(", ")}</p>
    </li>
  `;
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

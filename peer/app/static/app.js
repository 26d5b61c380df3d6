/**
 * The p2p peer's built-in web app: this peer, its peers, the payloads here and on the
 * network, uploads, downloads with live progress, the chunk map and the activity log.
 *
 * Every request goes to a RELATIVE URL (`_p2p/status`), so the page works both at `/`
 * of a peer and under `/_p2p/peers/{peerId}/` of any other peer. Names and other text
 * coming from peers are only ever put in the page as text (`textContent`), never as HTML.
 *
 * @module
 */

const STATUS_EVERY_MS = 5000;
const PEERS_EVERY_MS = 5000;
const PAYLOADS_EVERY_MS = 3000;
const MAX_ACTIVITY = 500;
const MAX_DOWNLOAD_ITEMS = 6;
const PAYLOAD_ID = /^[0-9a-f]{64}$/;
const PEER_ID = /^[0-9a-f]{40}$/;
const MIB = 1024 * 1024;

/** Colours for sources in the chunk map and download summaries (fine on light and dark). */
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
  "#3a8fd9",
  "#d9534f",
];
const TRACKER_COLOUR = "#8a94a6";

// ---------------------------------------------------------------------------
// DOM helpers

/** The element with this id. */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`Missing element '#${id}'`);
  return el;
}

/**
 * Makes an element. `props`: `class`, `text`, `dataset`, `style` (object of custom
 * properties and styles), `on` (object of listeners), anything else an attribute
 * (`true` for a bare one, `false`/`null`/`undefined` left out). Children: nodes or
 * strings (as text), nested arrays, and `null`/`false` (skipped).
 */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") {
      for (const [p, pv] of Object.entries(v)) el.style.setProperty(p, pv);
    } else if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces an element's children (same rules as `h()`: `null` and `false` are skipped). */
function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Sets an element's text only when it changed (keeps selections and screen readers calm). */
function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

// ---------------------------------------------------------------------------
// Formatting

function fmtBytes(n) {
  if (!Number.isFinite(n)) return "—";
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

function fmtMiBps(bytes, seconds) {
  if (!(seconds > 0)) return "— MiB/s";
  const r = bytes / MIB / seconds;
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)} MiB/s`;
}

function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 1) return "<1 s";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtSeconds(seconds) {
  if (!Number.isFinite(seconds)) return "—";
  return seconds < 10 ? `${seconds.toFixed(2)} s` : fmtDuration(seconds);
}

function fmtAgo(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return "never";
  const s = (Date.now() - ms) / 1000;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function fmtClock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso ?? "");
  return d.toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
}

function shortId(id, n = 8) {
  return typeof id === "string" && id.length > n ? id.slice(0, n) : String(id ?? "");
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------
// Errors and the control API

/** An error to show to people: its message is meant to be read. */
class AppError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "AppError";
    this.status = status;
    this.code = code;
  }
}

function messageOf(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Shows the latest error in the banner. `topic` names the action it is about
 * (`upload`, `scan`, …): when that action later succeeds, the banner goes away.
 */
function showError(err, topic = "") {
  const message = messageOf(err);
  setText(byId("error-text"), message);
  setText(byId("error-time"), fmtClock(new Date().toISOString()));
  const banner = byId("error-banner");
  banner.dataset.topic = topic;
  banner.hidden = false;
  return message;
}

/** Hides the banner; with a topic, only when it shows an error about that topic. */
function clearError(topic) {
  const banner = byId("error-banner");
  if (typeof topic === "string" && banner.dataset.topic !== topic) return;
  banner.hidden = true;
  byId("error-text").textContent = "";
}

/** The error an answer that is not 2xx carries (`{"error":{"code","message"}}`). */
async function errorFrom(res) {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body could not be read; the status says enough.
  }
  try {
    const j = JSON.parse(text);
    if (j && j.error && typeof j.error.message === "string") {
      return new AppError(j.error.message, res.status, String(j.error.code ?? ""));
    }
  } catch {
    // Not JSON.
  }
  let message = `The peer answered ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
  const plain = text.trim();
  if (plain && plain.length <= 300 && !plain.startsWith("<")) message += `: ${plain}`;
  return new AppError(message, res.status);
}

/** fetch() on a relative URL; rejects with an AppError on network failure or non-2xx. */
async function api(path, init = {}) {
  let res;
  try {
    res = await fetch(path, { cache: "no-store", ...init });
  } catch (err) {
    throw new AppError(`Cannot reach the peer (${messageOf(err)})`, 0, "network");
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && err.code === "unauthorized") askLogin();
    throw err;
  }
  return res;
}

// ---------------------------------------------------------------------------
// Login: the control API needs the owner's token. The peer keeps it in an HttpOnly
// cookie (set by its one-time login link, or by POST _p2p/login from this form), so
// no script here ever holds it after the form is sent.

/** Shows the login dialog (once), when the control API answered 401. */
function askLogin() {
  const dialog = byId("login");
  if (dialog.open) return;
  byId("login-error").hidden = true;
  dialog.showModal();
  byId("login-token").focus();
}

/** Sends the token from the form; on success, reloads every section. */
async function submitLogin(e) {
  e.preventDefault();
  const input = byId("login-token");
  const error = byId("login-error");
  const button = byId("login-submit");
  button.disabled = true;
  try {
    const res = await fetch("_p2p/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: input.value.trim() }),
    });
    if (!res.ok) throw await errorFrom(res);
    input.value = "";
    byId("login").close();
    clearError();
    statusPoll.soon(0);
    peersPoll.soon(0);
    payloadsPoll.soon(0);
    connectEvents();
  } catch (err) {
    setText(error, messageOf(err));
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

async function getJson(path) {
  const res = await api(path, { headers: { accept: "application/json" } });
  try {
    return await res.json();
  } catch (err) {
    throw new AppError(`The answer to '${path}' is not JSON (${messageOf(err)})`);
  }
}

/**
 * Reads an NDJSON answer line by line as it streams: calls `onEvent` with each event
 * other than the last, and resolves with the `{"type":"done"}` event. An
 * `{"type":"error"}` event, a broken line or a stream that ends early rejects.
 */
async function readEvents(res, onEvent) {
  if (!res.body) throw new AppError("The answer has no body");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const handle = (line) => {
    if (line.trim() === "") return undefined;
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      throw new AppError(`The peer sent a line that is not JSON: '${line.slice(0, 80)}'`);
    }
    if (e && e.type === "done") return e;
    if (e && e.type === "error") throw new AppError(e.message, 0, e.code ?? e.name);
    onEvent(e);
    return undefined;
  };
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new AppError(`The connection to the peer was lost (${messageOf(err)})`);
      }
      if (chunk.done) break;
      buf += chunk.value;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const done = handle(line);
        if (done) return done;
      }
    }
    const done = handle(buf);
    if (done) return done;
    throw new AppError("The peer's answer ended before it said it was done");
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// State

const state = {
  /** `_p2p/status`, once known. */
  self: null,
  /** Known peers by peerId (`_p2p/peers`). */
  peers: new Map(),
  /** Payloads held here by id (`_p2p/payloads`). */
  local: new Map(),
  /** Payloads known on the network by id (`_p2p/network/payloads`). */
  network: new Map(),
  /** Downloads started from this page, by payloadId. */
  downloads: new Map(),
  /** The chunk map shown: `{payloadId, chunks, rows, selfRow}`, or null. */
  map: null,
  /** Which source each chunk came from, per payload, as this page saw downloads. */
  chunkSources: new Map(),
  /** Source id → colour. */
  colours: new Map(),
};

function selfId() {
  return state.self?.peerId ?? "";
}

/** A readable name for a peerId (or `tracker`). */
function labelOf(id, name) {
  if (id === "tracker") return "tracker";
  if (id === selfId()) return `${state.self?.name || shortId(id)} (this peer)`;
  const n = name || state.peers.get(id)?.name;
  return n ? n : shortId(id);
}

function colourOf(id) {
  if (id === "tracker") return TRACKER_COLOUR;
  let c = state.colours.get(id);
  if (!c) {
    c = PALETTE[state.colours.size % PALETTE.length];
    state.colours.set(id, c);
  }
  return c;
}

function swatch(id) {
  return h("span", { class: "swatch", style: { "--sw": colourOf(id) }, "aria-hidden": "true" });
}

function payloadInfo(id) {
  const l = state.local.get(id);
  const n = state.network.get(id);
  return {
    name: l?.name || n?.name || "",
    size: l?.size ?? n?.size,
    chunks: l?.chunks ?? n?.chunks,
  };
}

function contentUrl(id) {
  return `_p2p/payloads/${encodeURIComponent(id)}/content?download=1`;
}

function saveLink(id, testid) {
  const name = payloadInfo(id).name;
  return h("a", {
    class: "btn small",
    href: contentUrl(id),
    download: name || `${id.slice(0, 16)}.bin`,
    "data-testid": testid,
    "aria-label": `Save ${name || shortId(id, 12)}`,
    text: "Save",
  });
}

// ---------------------------------------------------------------------------
// Polling

/**
 * Runs `fn` now and then every `everyMs`, never two at once. `soon()` asks for an
 * early run (coalesced, at most one a second).
 */
function poller(fn, everyMs) {
  let timer = 0;
  let running = false;
  let again = false;
  let lastEnd = 0;
  async function run() {
    clearTimeout(timer);
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      console.warn(err);
    } finally {
      running = false;
      lastEnd = performance.now();
    }
    if (again) {
      again = false;
      timer = setTimeout(run, 1000);
    } else {
      timer = setTimeout(run, everyMs);
    }
  }
  return {
    start: run,
    soon(delay = 250) {
      if (running) {
        again = true;
        return;
      }
      clearTimeout(timer);
      const wait = Math.max(delay, 1000 - (performance.now() - lastEnd));
      timer = setTimeout(run, wait);
    },
  };
}

// ---------------------------------------------------------------------------
// 1. This peer

async function refreshStatus() {
  const badge = byId("conn-state");
  let s;
  try {
    s = await getJson("_p2p/status");
  } catch (err) {
    badge.className = "badge bad";
    setText(badge, err.code === "network" ? "peer unreachable" : "status failed");
    badge.title = messageOf(err);
    throw err;
  }
  const first = !state.self;
  state.self = s;
  if (first) colourOf(s.peerId);
  badge.className = "badge ok";
  setText(badge, "online");
  badge.title = `Last status ${new Date().toLocaleTimeString()}`;

  setText(byId("peer-name"), s.name || shortId(s.peerId));
  document.title = `p2p · ${s.name || shortId(s.peerId)}`;
  setText(byId("this-peer-id"), s.peerId);
  setText(byId("st-version"), s.version ?? "—");
  setText(byId("footer-version"), `p2p ${s.version ?? ""}`);
  const addr = byId("st-address");
  setText(addr, s.host ?? "—");
  if (s.dataDir) addr.title = `Data directory: ${s.dataDir}`;
  const ports = s.ports ?? {};
  setText(
    byId("st-ports"),
    ["chunk", "http", "pingback", "app"]
      .filter((k) => ports[k] !== undefined)
      .map((k) => `${k} ${ports[k]}`)
      .join(" · ") || "—",
  );
  const tr = byId("st-tracker");
  if (!s.tracker) {
    fill(tr, h("span", { class: "muted", text: "none (peer to peer only)" }));
  } else {
    const t = s.tracker;
    fill(
      tr,
      h("code", { text: t.url }),
      " ",
      h("span", {
        class: `badge ${t.ok ? "ok" : "bad"}`,
        text: t.ok ? "connected" : "unreachable",
      }),
      t.lastContact
        ? h("span", { class: "muted small", text: ` · contact ${fmtAgo(t.lastContact)}` })
        : null,
      !t.ok && t.lastError ? h("div", { class: "small muted", text: t.lastError }) : null,
    );
  }
  setText(
    byId("st-payloads"),
    `${s.payloads ?? 0} (${s.completePayloads ?? 0} complete)`,
  );
  setText(byId("st-stored"), fmtBytes(s.storedBytes ?? 0));
  setText(
    byId("st-peers"),
    `${s.knownPeers ?? 0} known · ${plural(s.connections ?? 0, "connection")}`,
  );
  const dl = s.downloads;
  setText(byId("st-downloads"), dl.length ? `${dl.length} running` : "none running");
  setText(byId("status-updated"), `updated ${fmtClock(new Date().toISOString())}`);
}

// ---------------------------------------------------------------------------
// 2. Peers

async function refreshPeers() {
  const note = byId("peers-note");
  let list;
  try {
    list = (await getJson("_p2p/peers")).peers ?? [];
  } catch (err) {
    setText(note, `Could not refresh: ${messageOf(err)}`);
    throw err;
  }
  setText(note, "");
  state.peers = new Map(list.map((p) => [p.peerId, p]));
  renderPeers();
}

function renderPeers() {
  const body = byId("peers-body");
  const rows = new Map([...body.children].map((tr) => [tr.dataset.peerId, tr]));
  const peers = [...state.peers.values()].sort((a, b) =>
    Number(isStale(a)) - Number(isStale(b)) ||
    (a.name ?? "").localeCompare(b.name ?? "") ||
    a.peerId.localeCompare(b.peerId)
  );
  peers.forEach((p, i) => {
    let tr = rows.get(p.peerId);
    if (!tr) tr = peerRow(p);
    else rows.delete(p.peerId);
    updatePeerRow(tr, p);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] ?? null);
  });
  for (const tr of rows.values()) tr.remove();
  byId("peers-empty").hidden = peers.length > 0;
}

function isStale(p) {
  return p.stale;
}

function peerRow(p) {
  const appHref = PEER_ID.test(p.peerId) ? `/_p2p/peers/${p.peerId}/` : null;
  return h(
    "tr",
    { "data-testid": "peer-row", "data-peer-id": p.peerId },
    h(
      "td",
      { class: "cell-name", "data-label": "Name" },
      h(
        "div",
        {},
        h("span", { class: "title js-name" }),
        h("span", { class: "sub", title: p.peerId, text: shortId(p.peerId, 12) }),
      ),
    ),
    h("td", { "data-label": "Address" }, h("code", { class: "js-addr" })),
    h("td", { "data-label": "Found by" }, h("span", { class: "js-src" })),
    h("td", { "data-label": "Last seen" }, h("span", { class: "js-seen" })),
    h("td", { class: "num", "data-label": "RTT" }, h("span", { class: "js-rtt" })),
    h("td", { "data-label": "State" }, h("span", { class: "badge js-state" })),
    h(
      "td",
      { class: "cell-actions" },
      h(
        "div",
        { class: "actions" },
        appHref ? h("a", { class: "btn small js-app", href: appHref, text: "Open app" }) : null,
      ),
    ),
  );
}

function updatePeerRow(tr, p) {
  const q = (c) => tr.querySelector(c);
  setText(q(".js-name"), p.name || "(unnamed)");
  setText(q(".js-addr"), `${p.host}:${p.ports?.chunk ?? "?"}`);
  q(".js-addr").title = Object.entries(p.ports ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");
  setText(q(".js-src"), (p.sources ?? []).join(", ") || "—");
  setText(q(".js-seen"), fmtAgo(p.lastSeen));
  q(".js-seen").title = p.lastSeen ? new Date(p.lastSeen).toLocaleString() : "";
  setText(q(".js-rtt"), Number.isFinite(p.rttMs) ? `${Math.round(p.rttMs)} ms` : "—");
  const st = q(".js-state");
  const stale = isStale(p);
  st.className = `badge js-state ${stale ? "warn" : "ok"}`;
  setText(st, stale ? "stale" : "live");
  st.title = stale ? `${plural(p.failures ?? 0, "failed contact")}` : "";
  const app = q(".js-app");
  if (app) app.setAttribute("aria-label", `Open the app of ${p.name || shortId(p.peerId)}`);
}

async function scanLan(ev) {
  ev.preventDefault();
  const input = byId("scan-range");
  const btn = byId("scan-submit");
  const out = byId("scan-result");
  const range = input.value.trim();
  btn.disabled = true;
  setText(btn, "Scanning…");
  out.className = "result";
  fill(
    out,
    h("span", { class: "spinner", "aria-hidden": "true" }),
    `Scanning ${range || "this peer's subnets"}…`,
  );
  try {
    const res = await api("_p2p/discover", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(range ? { range } : {}),
    });
    const r = await res.json();
    renderScan(r);
    clearError("scan");
    peersPoll.soon(0);
  } catch (err) {
    out.className = "result bad";
    fill(out, h("p", { text: `Scan failed: ${messageOf(err)}` }));
    showError(err, "scan");
  } finally {
    btn.disabled = false;
    setText(btn, "Scan LAN");
  }
}

function renderScan(r) {
  const out = byId("scan-result");
  const found = r.found ?? [];
  const rejected = r.rejected ?? [];
  const stale = r.stale ?? [];
  const fresh = found.filter((f) => f.change === "new").length;
  out.className = "result ok";
  fill(
    out,
    h("p", { class: "result-title" }, [
      `Found ${plural(found.length, "peer")}`,
      fresh ? ` (${fresh} new)` : "",
      ` · ${rejected.length} rejected · ${stale.length} stale · ${fmtSeconds(r.seconds)}`,
    ]),
    h("p", {
      class: "muted small",
      text: `${(r.ranges ?? []).join(", ")}: ${plural(r.devices ?? 0, "device")}, ${
        r.probed ?? 0
      } probed`,
    }),
    r.devicesError
      ? h("p", { class: "small", text: `Device listing failed: ${r.devicesError}` })
      : null,
    found.length
      ? h(
        "ul",
        { class: "list-plain small" },
        found.map((f) =>
          h(
            "li",
            {},
            h("b", { text: f.name || shortId(f.peerId) }),
            ` ${shortId(f.peerId)} at ${f.host} · ${Math.round(f.rttMs ?? 0)} ms `,
            h("span", {
              class: `badge ${f.change === "new" ? "info" : f.change === "moved" ? "warn" : ""}`,
              text: f.change,
            }),
          )
        ),
      )
      : null,
    stale.length
      ? h(
        "details",
        { class: "small" },
        h("summary", { text: `Stale (${stale.length})` }),
        h(
          "ul",
          { class: "list-plain" },
          stale.map((s) => h("li", { text: `${labelOf(s.peerId)} at ${s.address}: ${s.reason}` })),
        ),
      )
      : null,
    rejected.length
      ? h(
        "details",
        { class: "small" },
        h("summary", { text: `Rejected (${rejected.length})` }),
        h(
          "ul",
          { class: "list-plain" },
          rejected.map((x) => h("li", { text: `${x.address}: ${x.reason}` })),
        ),
      )
      : null,
  );
}

// ---------------------------------------------------------------------------
// 3. Payloads

async function refreshPayloads() {
  const note = byId("payloads-note");
  const local = getJson("_p2p/payloads").then((j) => {
    state.local = new Map(j.payloads.map((p) => [p.payloadId, p]));
    renderPayloads();
  });
  const network = getJson("_p2p/network/payloads").then((j) => {
    state.network = new Map(j.payloads.map((p) => [p.payloadId, p]));
    renderPayloads();
    return j.errors;
  });
  const [l, n] = await Promise.allSettled([local, network]);
  const notes = [];
  if (l.status === "rejected") {
    notes.push(`Could not list the payloads here: ${messageOf(l.reason)}`);
  }
  if (n.status === "rejected") notes.push(`Network list unavailable: ${messageOf(n.reason)}`);
  else if (n.value.length) {
    notes.push(`${plural(n.value.length, "source")} did not answer`);
    note.title = n.value.map((e) => `${labelOf(e.source)}: ${e.message}`).join("\n");
  } else note.title = "";
  setText(note, notes.join(" · "));
}

function renderPayloads() {
  const body = byId("payloads-body");
  const rows = new Map([...body.children].map((tr) => [tr.dataset.payloadId, tr]));
  const ids = new Set([...state.local.keys(), ...state.network.keys()]);
  const list = [...ids].map((id) => {
    const l = state.local.get(id);
    const n = state.network.get(id);
    const holders = n?.holders ?? [];
    const holderCount = holders.length || ((l?.held ?? 0) > 0 ? 1 : 0);
    return {
      id,
      name: l?.name || n?.name || "",
      size: l?.size ?? n?.size ?? 0,
      chunks: l?.chunks ?? n?.chunks ?? 0,
      held: l?.held ?? 0,
      complete: l?.complete ?? false,
      addedAt: l?.addedAt ?? 0,
      holders,
      holderCount,
    };
  }).sort((a, b) =>
    b.addedAt - a.addedAt || b.holderCount - a.holderCount || a.id.localeCompare(b.id)
  );
  list.forEach((p, i) => {
    let tr = rows.get(p.id);
    if (!tr) tr = payloadRow(p.id);
    else rows.delete(p.id);
    updatePayloadRow(tr, p);
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] ?? null);
  });
  for (const tr of rows.values()) tr.remove();
  byId("payloads-empty").hidden = list.length > 0;
}

function payloadRow(id) {
  return h(
    "tr",
    { "data-testid": "payload-row", "data-payload-id": id },
    h(
      "td",
      { class: "cell-name", "data-label": "Name" },
      h(
        "div",
        {},
        h("span", { class: "title js-name" }),
        h("span", { class: "sub", title: id, text: `${id.slice(0, 16)}…` }),
      ),
    ),
    h("td", { class: "num", "data-label": "Size" }, h("span", { class: "js-size" })),
    h(
      "td",
      { class: "chunks-cell", "data-label": "Chunks here" },
      h(
        "div",
        {},
        h("span", { class: "js-chunks" }),
        h("span", { class: "meter js-meter", "aria-hidden": "true" }, h("span")),
      ),
    ),
    h("td", { class: "num", "data-label": "Holders" }, h("span", { class: "js-holders" })),
    h(
      "td",
      { class: "cell-actions" },
      h(
        "div",
        { class: "actions" },
        h("span", { class: "js-get" }),
        h("button", {
          type: "button",
          class: "btn small",
          text: "Chunk map",
          "data-testid": "payload-chunk-map",
          on: { click: () => showChunkMap(id, { scroll: true }) },
        }),
        h("button", {
          type: "button",
          class: "btn small ghost",
          text: "Copy id",
          "data-testid": "payload-copy-id",
          "aria-label": `Copy the payloadId ${id}`,
          on: { click: (e) => copyText(id, e.currentTarget) },
        }),
      ),
    ),
  );
}

function updatePayloadRow(tr, p) {
  const q = (c) => tr.querySelector(c);
  setText(q(".js-name"), p.name || "(unnamed)");
  setText(q(".js-size"), fmtBytes(p.size));
  q(".js-size").title = `${p.size.toLocaleString()} bytes`;
  setText(q(".js-chunks"), `${p.held}/${p.chunks}`);
  const meter = q(".js-meter");
  meter.classList.toggle("full", p.complete);
  meter.firstElementChild.style.width = `${p.chunks ? (100 * p.held) / p.chunks : 0}%`;
  setText(q(".js-holders"), p.holderCount);
  q(".js-holders").title = p.holders
    .map((x) => `${labelOf(x.peerId, x.name)}: ${x.held}/${p.chunks}`)
    .join("\n");
  // Download when not complete here, Save when it is: added and removed, never hidden.
  const slot = q(".js-get");
  const want = p.complete ? "save" : state.downloads.get(p.id)?.running ? "busy" : "get";
  if (slot.dataset.mode !== want) {
    slot.dataset.mode = want;
    fill(
      slot,
      want === "save" ? saveLink(p.id, "payload-save") : h("button", {
        type: "button",
        class: "btn small primary",
        "data-testid": "payload-download",
        disabled: want === "busy",
        text: want === "busy" ? "Downloading…" : p.held > 0 ? "Resume" : "Download",
        "aria-label": `Download ${p.name || shortId(p.id, 12)}`,
        on: { click: () => startDownload(p.id, { scroll: true }) },
      }),
    );
  }
}

async function copyText(text, button) {
  let ok = false;
  if (navigator.clipboard && globalThis.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // Fall back below.
    }
  }
  if (!ok) {
    const ta = h("textarea", {
      readonly: true,
      style: { position: "fixed", top: "-1000px", opacity: "0" },
    });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    ta.remove();
  }
  if (!button) return ok;
  if (!ok) {
    showError(`Could not copy to the clipboard; the id is: ${text}`);
    return ok;
  }
  if (!button.dataset.label) button.dataset.label = button.textContent;
  setText(button, "Copied ✓");
  button.classList.add("copy-done");
  clearTimeout(Number(button.dataset.timer));
  button.dataset.timer = String(
    setTimeout(() => {
      setText(button, button.dataset.label);
      button.classList.remove("copy-done");
    }, 1500),
  );
  return ok;
}

// ---------------------------------------------------------------------------
// 4. Upload

let uploading = false;

function setUploading(on) {
  uploading = on;
  byId("dropzone").classList.toggle("busy", on);
  byId("upload-file").disabled = on;
  document.querySelector("[data-testid=upload-text-submit]").disabled = on;
}

async function upload(body, name, what) {
  if (uploading) {
    showError("An upload is already running; wait for it to finish", "upload");
    return;
  }
  setUploading(true);
  const out = byId("upload-result");
  out.className = "result";
  delete out.dataset.payloadId;
  const line = h("span", { text: `Uploading ${what}…` });
  const elapsed = h("span", { class: "muted small" });
  fill(out, h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), line), elapsed);
  const started = performance.now();
  const tick = setInterval(() => {
    setText(elapsed, `${Math.round((performance.now() - started) / 1000)} s`);
  }, 1000);
  try {
    const q = name ? `?name=${encodeURIComponent(name)}` : "";
    const res = await api(`_p2p/payloads${q}`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", accept: "application/x-ndjson" },
      body,
    });
    const done = await readEvents(res, (e) => setText(line, uploadStep(e)));
    renderUploadDone(done, name);
    clearError("upload");
    payloadsPoll.soon(0);
    statusPoll.soon(0);
    return done;
  } catch (err) {
    out.className = "result bad";
    fill(out, h("p", { text: `Upload failed: ${messageOf(err)}` }));
    showError(err, "upload");
  } finally {
    clearInterval(tick);
    setUploading(false);
  }
}

function uploadStep(e) {
  switch (e.type) {
    case "stored":
      return `Stored ${fmtBytes(e.size)} in ${plural(e.chunks, "chunk")}; replicating…`;
    case "replicated":
      return `Replicating: ${e.done}/${e.chunks} chunks`;
    default: {
      const rest = Object.entries(e)
        .filter(([k]) => k !== "type")
        .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`)
        .join(", ");
      return `${e.type}${rest ? `: ${rest}` : ""}`;
    }
  }
}

function renderUploadDone(d, name) {
  const out = byId("upload-result");
  const id = d.payloadId;
  out.className = "result ok";
  out.dataset.payloadId = id;
  const replicas = Object.entries(d.replicas ?? {});
  fill(
    out,
    h("p", { class: "result-title" }, [
      d.created === false ? "Already stored: " : "Uploaded: ",
      name || "(unnamed)",
      ` · ${fmtBytes(d.size)} in ${plural(d.chunks, "chunk")}`,
    ]),
    h(
      "p",
      { class: "id-line" },
      h("code", { class: "js-payload-id", text: id }),
      h("button", {
        type: "button",
        class: "btn small ghost",
        text: "Copy",
        "aria-label": "Copy the payloadId",
        on: { click: (e) => copyText(id, e.currentTarget) },
      }),
    ),
    h(
      "p",
      { class: "small" },
      replicas.length
        ? [
          "Copies pushed: ",
          replicas.map(([peer, n], i) => [
            i ? ", " : "",
            h("span", { class: "chip" }, swatch(peer), `${labelOf(peer)} ×${n}`),
          ]),
        ]
        : "No other peer took a copy (no live peer to push to).",
    ),
    d.underReplicated > 0
      ? h("p", {
        class: "small",
        text: `${plural(d.underReplicated, "chunk")} got fewer copies than asked for.`,
      })
      : null,
    h(
      "div",
      { class: "actions", style: { "justify-content": "flex-start" } },
      h("a", {
        class: "btn small",
        href: contentUrl(id),
        download: name || `${id.slice(0, 16)}.bin`,
        text: "Save",
      }),
      h("button", {
        type: "button",
        class: "btn small",
        text: "Chunk map",
        on: { click: () => showChunkMap(id, { scroll: true }) },
      }),
    ),
  );
}

function setupUpload() {
  const zone = byId("dropzone");
  const input = byId("upload-file");
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    if (file) uploadFile(file);
    input.value = "";
  });
  let depth = 0;
  zone.addEventListener("dragenter", (e) => {
    e.preventDefault();
    depth++;
    zone.classList.add("over");
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", () => {
    if (--depth <= 0) {
      depth = 0;
      zone.classList.remove("over");
    }
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("over");
    const files = e.dataTransfer?.files;
    if (!files || files.length === 0) {
      showError("Nothing to upload: drop a file (not a folder or text)", "upload");
      return;
    }
    if (files.length > 1) {
      showError(`Drop one file at a time (${files.length} were dropped)`, "upload");
      return;
    }
    uploadFile(files[0]);
  });
  // A file dropped beside the zone must not make the browser leave the page.
  for (const t of ["dragover", "drop"]) {
    globalThis.addEventListener(t, (e) => {
      if (!zone.contains(e.target)) e.preventDefault();
    });
  }

  byId("text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = byId("upload-text");
    const name = byId("upload-name").value.trim();
    if (text.value === "") {
      text.setAttribute("aria-invalid", "true");
      showError("Type some text to upload first", "upload");
      text.focus();
      return;
    }
    text.removeAttribute("aria-invalid");
    if (name.length > 255) {
      showError(`The name is ${name.length} characters long; at most 255 are allowed`, "upload");
      return;
    }
    const bytes = new TextEncoder().encode(text.value);
    upload(bytes, name, `${fmtBytes(bytes.length)} of text`).then((done) => {
      if (done) text.value = "";
    });
  });
}

function uploadFile(file) {
  const name = file.name.slice(0, 255);
  upload(file, name, `'${name}' (${fmtBytes(file.size)})`);
}

// ---------------------------------------------------------------------------
// 5. Downloads

function validatePayloadId(raw) {
  const v = raw.trim().toLowerCase();
  if (v === "") return { error: "Enter a payloadId: 64 hex digits" };
  const bad = v.match(/[^0-9a-f]/);
  if (bad) {
    return {
      error: `A payloadId has only the hex digits 0-9 and a-f; '${bad[0]}' at position ${
        (bad.index ?? 0) + 1
      } is not one`,
    };
  }
  if (v.length !== 64) {
    return { error: `A payloadId has 64 hex digits; this one has ${v.length}` };
  }
  return { id: v };
}

function setupGetForm() {
  const input = byId("get-id");
  const msg = byId("get-id-msg");
  byId("get-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const r = validatePayloadId(input.value);
    if (r.error) {
      input.setAttribute("aria-invalid", "true");
      setText(msg, r.error);
      showError(r.error, "download");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    setText(msg, "");
    input.value = r.id;
    startDownload(r.id, { scroll: true });
  });
  input.addEventListener("input", () => {
    if (input.getAttribute("aria-invalid")) {
      input.removeAttribute("aria-invalid");
      setText(msg, "");
    }
  });
}

function downloadItem(id) {
  let d = state.downloads.get(id);
  if (d) {
    // Newest on top.
    byId("downloads-list").prepend(d.el);
    return d;
  }
  const tpl = /** @type {HTMLTemplateElement} */ (byId("download-item"));
  const el = /** @type {HTMLElement} */ (tpl.content.firstElementChild.cloneNode(true));
  el.dataset.payloadId = id;
  d = {
    id,
    el,
    running: false,
    bar: el.querySelector("progress"),
    text: el.querySelector(".progress-text"),
    chips: el.querySelector(".source-chips"),
    result: el.querySelector(".download-result"),
    bySource: new Map(),
  };
  el.querySelector(".download-id").textContent = shortId(id, 16);
  el.querySelector(".download-id").title = id;
  state.downloads.set(id, d);
  const list = byId("downloads-list");
  list.prepend(el);
  // Forget the oldest finished ones.
  const items = [...state.downloads.values()];
  for (const old of items.slice(0, Math.max(0, items.length - MAX_DOWNLOAD_ITEMS))) {
    if (old.running) continue;
    old.el.remove();
    state.downloads.delete(old.id);
  }
  byId("downloads-empty").hidden = true;
  return d;
}

async function startDownload(id, { scroll = false } = {}) {
  const existing = state.downloads.get(id);
  if (existing?.running) {
    existing.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    return;
  }
  const d = downloadItem(id);
  d.running = true;
  d.bySource = new Map();
  d.chunks = payloadInfo(id).chunks ?? 0;
  d.el.classList.remove("done", "failed");
  setText(d.el.querySelector(".download-name"), payloadInfo(id).name || "(unnamed payload)");
  d.bar.value = 0;
  d.bar.removeAttribute("value"); // Indeterminate until the first progress.
  d.bar.setAttribute("aria-label", `Download of ${payloadInfo(id).name || shortId(id, 12)}`);
  setText(d.text, "Starting: fetching the manifest and finding holders…");
  fill(d.chips);
  d.result.removeAttribute("data-testid");
  d.result.className = "download-result";
  fill(d.result);
  renderPayloads();
  if (scroll) d.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
  // The map shows this payload and fills in live.
  state.chunkSources.set(id, new Map());
  showChunkMap(id, { quiet: true });
  try {
    const res = await api(`_p2p/downloads/${encodeURIComponent(id)}`, {
      method: "POST",
      headers: { accept: "application/x-ndjson" },
    });
    const done = await readEvents(res, (e) => {
      if (e.type === "progress") onProgress(d, e);
      else if (e.type === "chunk") onChunk(d, e);
    });
    onDone(d, done);
    clearError("download");
  } catch (err) {
    d.el.classList.add("failed");
    d.result.className = "download-result bad";
    d.result.setAttribute("data-testid", "download-result");
    fill(
      d.result,
      h("p", { text: `Download failed: ${messageOf(err)}` }),
      h(
        "div",
        { class: "actions" },
        h("button", {
          type: "button",
          class: "btn small",
          text: "Retry",
          on: { click: () => startDownload(id) },
        }),
      ),
    );
    setText(d.text, "Stopped.");
    if (!d.bar.hasAttribute("value")) d.bar.value = 0;
    showError(`Download of ${shortId(id, 12)} failed: ${messageOf(err)}`, "download");
  } finally {
    d.running = false;
    renderPayloads();
    payloadsPoll.soon(0);
    statusPoll.soon(0);
    if (state.map?.payloadId === id) showChunkMap(id, { quiet: true, keep: true });
  }
}

function onProgress(d, p) {
  d.chunks = p.chunks;
  const pct = p.size > 0
    ? (100 * p.bytes) / p.size
    : p.chunks > 0
    ? (100 * p.done) / p.chunks
    : 100;
  d.bar.value = Math.min(100, pct);
  const rate = p.seconds > 0 ? p.fetchedBytes / p.seconds : 0;
  const eta = rate > 0 ? (p.size - p.bytes) / rate : NaN;
  setText(
    d.text,
    [
      `${Math.floor(pct)}%`,
      `${fmtBytes(p.bytes)} of ${fmtBytes(p.size)}`,
      `${p.done}/${p.chunks} chunks`,
      fmtMiBps(p.fetchedBytes, p.seconds),
      p.done >= p.chunks ? "finishing" : `ETA ${fmtDuration(eta)}`,
      plural(p.sources ?? 0, "source"),
    ].join(" · "),
  );
  ensureMapFor(p.payloadId ?? d.id, p.chunks);
}

function onChunk(d, e) {
  const source = e.source;
  d.bySource.set(source, (d.bySource.get(source) ?? 0) + 1);
  renderSourceChips(d.chips, d.bySource);
  markChunk(d.id, e.index, source);
}

function renderSourceChips(box, counts) {
  fill(
    box,
    ...[...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([src, n]) => h("span", { class: "chip" }, swatch(src), `${labelOf(src)} ${n}`)),
  );
}

function onDone(d, r) {
  d.el.classList.add("done");
  d.bar.value = 100;
  const total = r.size ?? 0;
  const bySource = new Map(Object.entries(r.chunksBySource ?? {}));
  renderSourceChips(d.chips, bySource);
  setText(
    d.text,
    `100% · ${fmtBytes(total)} · ${fmtSeconds(r.seconds)} · ${fmtMiBps(r.bytes, r.seconds)}`,
  );
  d.result.className = "download-result";
  d.result.setAttribute("data-testid", "download-result");
  const dropped = r.dropped ?? [];
  fill(
    d.result,
    h(
      "p",
      { class: "result-title" },
      r.bytes === 0 && r.resumed > 0
        ? "Already complete here: nothing to fetch"
        : `Done: ${fmtBytes(r.bytes)} fetched in ${fmtSeconds(r.seconds)} (${
          fmtMiBps(r.bytes, r.seconds)
        })`,
    ),
    r.resumed > 0
      ? h("p", {
        class: "small muted",
        text: `${plural(r.resumed, "chunk")} ${r.resumed === 1 ? "was" : "were"} already here.`,
      })
      : null,
    bySource.size
      ? h(
        "p",
        { class: "small" },
        "Chunks per source: ",
        [...bySource.entries()].map(([src, n], i) => [
          i ? ", " : "",
          h("span", { class: "chip" }, swatch(src), `${labelOf(src)} ${n}`),
        ]),
      )
      : null,
    dropped.length
      ? h(
        "details",
        { class: "small" },
        h("summary", { text: `${plural(dropped.length, "source")} dropped` }),
        h(
          "ul",
          { class: "list-plain" },
          dropped.map((x) => h("li", { text: `${labelOf(x.source)}: ${x.reason}` })),
        ),
      )
      : null,
    h(
      "div",
      { class: "actions" },
      saveLink(d.id, "download-save"),
      h("button", {
        type: "button",
        class: "btn small",
        text: "Chunk map",
        on: { click: () => showChunkMap(d.id, { scroll: true, keep: true }) },
      }),
    ),
  );
}

// ---------------------------------------------------------------------------
// 6. Chunk map

function bitsFromHex(hex) {
  const s = typeof hex === "string" ? hex : "";
  const out = new Uint8Array(Math.floor(s.length / 2));
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16) || 0;
  return out;
}

function hasBit(bits, i) {
  return ((bits[i >> 3] ?? 0) >> (7 - (i & 7))) & 1;
}

function cellSize(n) {
  return n <= 128 ? "l" : n <= 512 ? "m" : n <= 2048 ? "s" : "xs";
}

let mapToken = 0;

/**
 * Shows the chunk map of a payload from `where`. `quiet`: a failure is shown in the
 * map only; `keep`: the map stays as it is while loading (a refresh).
 */
async function showChunkMap(id, { scroll = false, quiet = false, keep = false } = {}) {
  const box = byId("chunk-map");
  const token = ++mapToken;
  byId("chunkmap-refresh").hidden = false;
  box.dataset.payloadId = id;
  if (!keep || state.map?.payloadId !== id) {
    fill(
      box,
      mapHead(id, payloadInfo(id).chunks),
      h(
        "p",
        { class: "muted" },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        "Asking who holds which chunk…",
      ),
    );
  }
  if (scroll) byId("chunkmap").scrollIntoView({ block: "start", behavior: "smooth" });
  let where;
  try {
    where = await getJson(`_p2p/payloads/${encodeURIComponent(id)}/where`);
  } catch (err) {
    if (token !== mapToken) return;
    if (state.map?.payloadId === id) return; // A live map from a download is there.
    fill(
      box,
      mapHead(id, payloadInfo(id).chunks),
      h("p", { class: "result bad", text: `Chunk map unavailable: ${messageOf(err)}` }),
    );
    if (!quiet) showError(err, "map");
    return;
  }
  if (token !== mapToken) return;
  clearError("map");
  const rows = where.rows.map((r) => ({ ...r, bits: bitsFromHex(r.have) }));
  setMap(id, where.chunks, rows);
}

/** A map with only this peer's row, empty, for a download whose `where` is not known. */
function ensureMapFor(id, chunks) {
  if (state.map?.payloadId === id || !state.self) return;
  if (byId("chunk-map").dataset.payloadId !== id) return; // Someone chose another map.
  // A `where` still on its way replaces this when it comes.
  setMap(id, chunks, [{
    peerId: selfId(),
    name: state.self.name,
    address: "",
    count: 0,
    via: "self",
    bits: new Uint8Array(Math.ceil(chunks / 8)),
  }]);
}

function mapHead(id, chunks) {
  const info = payloadInfo(id);
  return h(
    "div",
    { class: "chunk-map-head" },
    h("span", { class: "title", text: info.name || "(unnamed payload)" }),
    h("code", { class: "muted small", title: id, text: shortId(id, 16) }),
    Number.isFinite(chunks)
      ? h("span", {
        class: "muted small",
        text: `${plural(chunks, "chunk")}${
          info.size !== undefined ? ` · ${fmtBytes(info.size)}` : ""
        }`,
      })
      : null,
  );
}

function setMap(id, chunks, rows) {
  const box = byId("chunk-map");
  const me = selfId();
  if (me && !rows.some((r) => r.peerId === me)) {
    // This peer's row is always there: a download fills it in.
    rows.push({
      peerId: me,
      name: state.self.name,
      address: "",
      count: 0,
      via: "self",
      bits: new Uint8Array(0),
    });
  }
  // This peer first, then by count.
  rows.sort((a, b) =>
    Number(b.peerId === me) - Number(a.peerId === me) || b.count - a.count ||
    String(a.peerId).localeCompare(String(b.peerId))
  );
  const sources = state.chunkSources.get(id) ?? new Map();
  const legend = h("ul", { class: "legend", "aria-label": "Colours" });
  const legendIds = new Set();
  const addLegend = (src) => {
    if (legendIds.has(src)) return;
    legendIds.add(src);
    legend.append(h("li", { class: "chip" }, swatch(src), labelOf(src)));
  };
  const map = {
    payloadId: id,
    chunks,
    rows,
    selfCells: null,
    selfCount: null,
    selfRow: null,
    addLegend,
  };
  const size = cellSize(chunks);
  const rowEls = rows.map((r) => {
    const isSelf = r.peerId === me;
    const cells = h("div", {
      class: "cells",
      "data-size": size,
      role: "img",
      "aria-label": `${labelOf(r.peerId, r.name)} holds ${r.count} of ${chunks} chunks`,
    });
    const frag = document.createDocumentFragment();
    const list = new Array(chunks);
    let count = 0;
    for (let i = 0; i < chunks; i++) {
      const cell = document.createElement("i");
      const held = isSelf && sources.has(i) ? true : hasBit(r.bits, i) === 1;
      if (held) {
        count++;
        const src = isSelf ? sources.get(i) ?? r.peerId : r.peerId;
        cell.className = "on";
        cell.style.setProperty("--c", colourOf(src));
        addLegend(src);
      }
      list[i] = cell;
      frag.append(cell);
    }
    cells.append(frag);
    const countEl = h("span", { class: "count", text: `${count}/${chunks}` });
    if (isSelf) {
      map.selfCells = list;
      map.selfCount = count;
      map.selfCountEl = countEl;
      map.selfCellsBox = cells;
      map.selfRow = r;
    }
    return h(
      "div",
      { class: "map-row", "data-peer-id": r.peerId },
      h(
        "div",
        { class: "map-label" },
        h("span", { class: "who", title: `${r.peerId}${r.address ? ` at ${r.address}` : ""}` }, [
          labelOf(r.peerId, r.name),
          r.via && r.via !== "self"
            ? h("span", { class: "muted small", text: ` · via ${r.via}` })
            : null,
        ]),
        countEl,
      ),
      cells,
    );
  });
  state.map = map;
  box.dataset.payloadId = id;
  fill(
    box,
    mapHead(id, chunks),
    legend,
    rows.length ? rowEls : h("p", { class: "empty", text: "No peer is known to hold any chunk." }),
  );
}

/** A chunk stored by a download here: this peer's row fills in, coloured by source. */
function markChunk(id, index, source) {
  let sources = state.chunkSources.get(id);
  if (!sources) state.chunkSources.set(id, sources = new Map());
  sources.set(index, source);
  const m = state.map;
  if (!m || m.payloadId !== id || !m.selfCells) return;
  const cell = m.selfCells[index];
  if (!cell) return;
  if (!cell.classList.contains("on")) {
    m.selfCount++;
    setText(m.selfCountEl, `${m.selfCount}/${m.chunks}`);
    m.selfCellsBox.setAttribute(
      "aria-label",
      `${labelOf(selfId())} holds ${m.selfCount} of ${m.chunks} chunks`,
    );
  }
  cell.className = "on new";
  cell.style.setProperty("--c", colourOf(source));
  m.addLegend(source);
}

function setupChunkMap() {
  byId("chunkmap-refresh").addEventListener("click", () => {
    const id = byId("chunk-map").dataset.payloadId;
    if (id) showChunkMap(id, { keep: true });
  });
  // Which chunk is under the pointer, without a title on each of up to 4096 cells.
  byId("chunk-map").addEventListener("mouseover", (e) => {
    const cell = e.target;
    if (!(cell instanceof HTMLElement) || cell.tagName !== "I" || cell.title) return;
    const i = Array.prototype.indexOf.call(cell.parentElement?.children ?? [], cell);
    cell.title = `chunk ${i}${cell.classList.contains("on") ? "" : " (missing)"}`;
  });
}

// ---------------------------------------------------------------------------
// 7. Activity

const activity = {
  records: [], // newest first: {r, li, text}
  keys: new Set(),
  pending: [],
  paused: false,
  filter: "",
  source: null,
  retry: 0,
};

function activityKey(r) {
  return `${r.id}|${r.ts}|${r.type}`;
}

function connectEvents() {
  const badge = byId("events-state");
  const set = (cls, text) => {
    badge.className = `badge ${cls}`;
    setText(badge, text);
  };
  set("", "connecting…");
  // Called again after a login: one stream at a time.
  activity.source?.close();
  clearTimeout(activity.retry);
  const es = new EventSource("_p2p/events");
  activity.source = es;
  const onMessage = (ev) => {
    let r;
    try {
      r = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (r && typeof r === "object" && typeof r.type === "string") onRecord(r);
  };
  es.addEventListener("activity", onMessage);
  es.addEventListener("open", () => set("ok", "live"));
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an error answer): try again ourselves.
      set("bad", "disconnected");
      clearTimeout(activity.retry);
      activity.retry = setTimeout(connectEvents, 5000);
    } else {
      set("warn", "reconnecting…");
    }
  });
}

function onRecord(r) {
  const key = activityKey(r);
  if (activity.keys.has(key)) return;
  activity.keys.add(key);
  react(r.type);
  if (activity.paused) {
    activity.pending.push(r);
    updateActivityCount();
    return;
  }
  insertRecord(r);
  updateActivityCount();
}

/** Refreshes the sections an activity record concerns. */
function react(type) {
  if (type.startsWith("peer.") || type.startsWith("discover.") || type.startsWith("exchange")) {
    peersPoll.soon();
  }
  if (
    type.startsWith("payload.") || type.startsWith("chunk.received") ||
    type.startsWith("download.")
  ) {
    payloadsPoll.soon();
    statusPoll.soon();
  }
  if (type.startsWith("tracker.")) statusPoll.soon();
}

function insertRecord(r) {
  const entry = { r, li: activityRow(r), text: JSON.stringify(r).toLowerCase() };
  activity.records.unshift(entry);
  if (matches(entry)) byId("activity-list").prepend(entry.li);
  while (activity.records.length > MAX_ACTIVITY) {
    const old = activity.records.pop();
    old.li.remove();
    activity.keys.delete(activityKey(old.r));
  }
}

function matches(entry) {
  const f = activity.filter;
  if (!f) return true;
  return entry.r.type.toLowerCase().startsWith(f) || entry.text.includes(f);
}

function typeClass(type) {
  if (type === "error" || /(\.|^)(error|fail|reject|drop)/.test(type)) return "t-error";
  if (/(\.|^)(stale|expire|stop)/.test(type)) return "t-warn";
  if (/\.(done|start)$/.test(type)) return "t-ok";
  return "";
}

function fieldValue(v) {
  if (typeof v === "string") {
    if (PEER_ID.test(v)) return labelOf(v);
    if (PAYLOAD_ID.test(v)) return `${v.slice(0, 12)}…`;
    return v.length > 160 ? `${v.slice(0, 160)}…` : v;
  }
  if (v && typeof v === "object") {
    const s = JSON.stringify(v);
    return s.length > 160 ? `${s.slice(0, 160)}…` : s;
  }
  return String(v);
}

function activityRow(r) {
  const fields = Object.entries(r).filter(([k]) => k !== "id" && k !== "ts" && k !== "type");
  const rest = { ...r };
  delete rest.ts;
  return h(
    "li",
    { "data-testid": "activity-row", "data-type": r.type, "data-id": r.id },
    h("span", { class: "time", title: r.ts, text: fmtClock(r.ts) }),
    h("span", { class: `type ${typeClass(r.type)}`, text: r.type }),
    h(
      "span",
      { class: "fields", title: JSON.stringify(rest) },
      fields.map(([k, v], i) => [i ? "  " : "", `${k} `, h("b", { text: fieldValue(v) })]),
    ),
  );
}

function rebuildActivity() {
  const list = byId("activity-list");
  fill(list, ...activity.records.filter(matches).map((e) => e.li));
  updateActivityCount();
}

function updateActivityCount() {
  const shown = byId("activity-list").childElementCount;
  const total = activity.records.length;
  const parts = [activity.filter ? `${shown} of ${total} records match` : plural(total, "record")];
  if (activity.paused) parts.push(`paused, ${activity.pending.length} new waiting`);
  setText(byId("activity-count"), parts.join(" · "));
  const btn = byId("activity-pause");
  setText(
    btn,
    activity.paused
      ? `Resume${activity.pending.length ? ` (${activity.pending.length})` : ""}`
      : "Pause",
  );
}

function setupActivity() {
  const filter = byId("activity-filter");
  let t = 0;
  filter.addEventListener("input", () => {
    clearTimeout(t);
    t = setTimeout(() => {
      activity.filter = filter.value.trim().toLowerCase();
      rebuildActivity();
    }, 120);
  });
  const btn = byId("activity-pause");
  btn.addEventListener("click", () => {
    activity.paused = !activity.paused;
    btn.setAttribute("aria-pressed", String(activity.paused));
    if (!activity.paused) {
      for (const r of activity.pending.splice(0)) insertRecord(r);
    }
    updateActivityCount();
  });
  connectEvents();
}

// ---------------------------------------------------------------------------
// Start

const statusPoll = poller(refreshStatus, STATUS_EVERY_MS);
const peersPoll = poller(refreshPeers, PEERS_EVERY_MS);
const payloadsPoll = poller(refreshPayloads, PAYLOADS_EVERY_MS);

function setupVia() {
  // Under /_p2p/peers/{peerId}/ this page is another peer's, reached through this one.
  const m = location.pathname.match(/^\/_p2p\/peers\/([0-9a-f]+)\//);
  if (!m) return;
  const note = byId("via-note");
  note.hidden = false;
  fill(note, "over the peer network · ", h("a", { href: "/", text: "local peer's app" }));
}

function start() {
  byId("error-close").addEventListener("click", () => clearError());
  byId("copy-self-id").addEventListener("click", (e) => {
    const id = selfId();
    if (id) copyText(id, e.currentTarget);
  });
  byId("scan-form").addEventListener("submit", scanLan);
  byId("login-form").addEventListener("submit", submitLogin);
  setupVia();
  setupUpload();
  setupGetForm();
  setupChunkMap();
  setupActivity();
  statusPoll.start().then(() => {
    peersPoll.start();
    payloadsPoll.start();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    statusPoll.soon(0);
    peersPoll.soon(0);
    payloadsPoll.soon(0);
  });
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}

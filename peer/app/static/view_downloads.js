/**
 * The downloads card: get a payload by id (or a unique prefix, or a name), and one
 * item per download started on this page with the same progress the payload's row
 * shows, where the chunks came from, and its outcome.
 *
 * @module
 */
import { html, useState } from "./html.js";
import { resolvePayloadId, startDownload } from "./actions.js";
import { fmtBytes, fmtDuration, fmtRate, fmtSeconds, percent, plural } from "./format.js";
import { clearError, downloads, labelOf, mapFor, payloadInfo, showError } from "./state.js";
import { Bar, GetAction, SourceChip } from "./ui.js";
import { payloadRows } from "./state.js";

/** @typedef {import("./types.js").Download} Download */

/** The progress line: `42% · 1.2 MiB of 3 MiB · 2/5 pieces · 4.1 MiB/s · 2 s left · 2 sources`. */
function progressWords(/** @type {Download} */ d) {
  const p = d.progress;
  if (!p) return "Starting: finding who holds it…";
  const rate = p.seconds > 0 ? p.fetchedBytes / p.seconds : 0;
  const left = rate > 0 ? (p.size - p.bytes) / rate : NaN;
  return [
    `${percent(p.bytes, p.size)}%`,
    `${fmtBytes(p.bytes)} of ${fmtBytes(p.size)}`,
    `${p.done}/${p.chunks} pieces`,
    fmtRate(p.fetchedBytes, p.seconds),
    p.done >= p.chunks ? "finishing" : `${fmtDuration(left)} left`,
    `from ${plural(p.sources, "source")}`,
  ].join(" · ");
}

/** One download. */
function DownloadItem(/** @type {{ d: Download }} */ { d }) {
  const info = payloadInfo(d.id);
  const row = payloadRows.value.find((r) => r.id === d.id);
  const chips = [...d.bySource.entries()].sort((a, b) => b[1] - a[1]);
  const r = d.result;
  const pct = r ? 100 : d.progress ? percent(d.progress.bytes, d.progress.size) : undefined;
  return html`
    <li class=${`download${r ? " done" : ""}${d.error ? " failed" : ""}`}
      data-payload-id=${d.id} data-testid="download-item">
        <div class="download-head">
          <span class="download-name">${info.name || "(unnamed file)"}</span>
          <code class="download-id" title=${d.id}>${d.id.slice(0, 12)}</code>
        </div>
        <div class="download-progress" data-testid="download-progress">
          <${Bar} pct=${pct} label=${`Download of ${info.name || d.id.slice(0, 12)}`} done=${!!r} />
          <div class="progress-text small">${r
            ? `100% · ${fmtBytes(r.size)} · ${fmtSeconds(r.seconds)}`
            : d.error
            ? "Stopped."
            : progressWords(d)}</div>
          <div class="source-chips small">${chips.map(([s, n]) =>
            html`<${SourceChip} id=${s} n=${n} />`
          )}</div>
        </div>
        ${r
          ? html`<div class="download-result" data-testid="download-result">
        <p class="result-title">${
            r.bytes === 0 && r.resumed > 0
              ? "Already all here: nothing to fetch"
              : `Done: ${fmtBytes(r.bytes)} in ${fmtSeconds(r.seconds)}${
                r.bytes >= 1024 * 1024 ? ` (${fmtRate(r.bytes, r.seconds)})` : ""
              }`
          }</p>
        ${
            r.resumed > 0
              ? html`<p class="small muted">${plural(r.resumed, "piece")} ${
                r.resumed === 1 ? "was" : "were"
              } already here.</p>`
              : null
          }
        ${
            (r.dropped ?? []).length
              ? html`
                <details class="small">
                  <summary>${plural(
                    r.dropped.length,
                    "source",
                  )} stopped being used</summary>
                  <ul class="list-plain">${r.dropped.map((
                    /** @type {any} */ x,
                  ) => html`<li>${labelOf(String(x.source))}: ${String(x.reason)}</li>`)}</ul>
                </details>
              `
              : null
          }
        <div class="actions">${row ? html`<${GetAction} row=${row} />` : null}
          <button type="button" class="btn small" onClick=${() => mapFor.value = d.id}>
            Chunk map</button></div>
      </div>`
          : d.error
          ? html`
            <div class="download-result bad" data-testid="download-result">
              <p>Download failed: ${d.error}</p>
              <div class="actions"><button type="button" class="btn small"
                      onClick=${() => startDownload(d.id)}>Try again</button></div>
            </div>
          `
          : null}
      </li>
  `;
}

/** The downloads card. */
export function DownloadsCard() {
  const [value, setValue] = useState("");
  const [msg, setMsg] = useState("");
  const list = [...downloads.value.values()].reverse();
  const submit = async (/** @type {Event} */ e) => {
    e.preventDefault();
    const r = await resolvePayloadId(value);
    if (r.error) {
      setMsg(r.error);
      showError(r.error, "download");
      return;
    }
    setMsg("");
    clearError("download");
    const id = /** @type {string} */ (r.id);
    setValue(id);
    startDownload(id);
  };
  return html`<section class="card" id="downloads" aria-labelledby="downloads-h">
    <div class="card-head"><h2 id="downloads-h">Downloads</h2></div>
    <form id="get-form" class="inline-form" novalidate onSubmit=${submit}>
      <div class="field grow">
        <label for="get-id">Get a file by its id or name</label>
        <input id="get-id" type="text" autocomplete="off" spellcheck="false"
          placeholder="id (6+ hex digits) or name" aria-describedby="get-id-msg"
          aria-invalid=${msg ? "true" : undefined} value=${value}
          onInput=${(/** @type {any} */ e) => {
    setValue(e.currentTarget.value);
    setMsg("");
  }} />
      </div>
      <button type="submit" class="btn primary">Download</button>
      <p class="field-msg" id="get-id-msg" aria-live="polite">${msg}</p>
    </form>
    ${
    list.length
      ? html`<ol class="downloads">${
        list.map((d) => html`<${DownloadItem} key=${d.id} d=${d} />`)
      }</ol>`
      : html`<p class="empty">Nothing downloaded from this page yet.</p>`
  }
  </section>`;
}

/**
 * The upload card: a file (dropped, or chosen: "Choose a file" on touch screens,
 * where nothing can be dropped) or typed text, an optional name, the percentage sent,
 * then what the peer does with it, and the result with its share link.
 *
 * @module
 */
import { html, useEffect, useRef, useState } from "./html.js";
import { shareLink, uploadBody, uploadState } from "./actions.js";
import { fmtBytes, plural } from "./format.js";
import { showError } from "./state.js";
import { CopyButton, SourceChip } from "./ui.js";

/** Whether the main pointer is a finger: no drag and drop there. */
export function isTouch() {
  return globalThis.matchMedia?.("(pointer: coarse)").matches ||
    navigator.maxTouchPoints > 0;
}

/** The upload card. */
export function UploadCard() {
  const [name, setName] = useState("");
  const [tags, setTags] = useState("");
  const [text, setText] = useState("");
  const [over, setOver] = useState(false);
  const [textBad, setTextBad] = useState(false);
  const input = useRef(/** @type {HTMLInputElement | null} */ (null));
  const s = uploadState.value;
  const busy = s.phase === "sending" || s.phase === "storing";
  const touch = isTouch();

  const send = async (
    /** @type {Blob | Uint8Array} */ body,
    /** @type {string} */ n,
    /** @type {string} */ what,
  ) => {
    if (n.length > 255) {
      showError(
        `The name is ${n.length} characters long; at most 255 are allowed`,
        "upload",
      );
      return false;
    }
    const ok = await uploadBody(body, n, what, tags.split(/[\s,]+/).filter((t) => t));
    // The next upload starts with an empty name and no tags.
    if (ok) {
      setName("");
      setTags("");
    }
    return ok;
  };
  const sendFile = (/** @type {File} */ file) => {
    const n = name.trim() || file.name.slice(0, 255);
    send(file, n, `'${n}' (${fmtBytes(file.size)})`);
  };
  const onDrop = (/** @type {DragEvent} */ e) => {
    e.preventDefault();
    setOver(false);
    const files = e.dataTransfer?.files;
    if (!files || files.length === 0) {
      showError(
        "Nothing to upload: drop a file (not a folder or text)",
        "upload",
      );
    } else if (files.length > 1) {
      showError(
        `Drop one file at a time (${files.length} were dropped)`,
        "upload",
      );
    } else sendFile(files[0]);
  };
  const onText = async (/** @type {Event} */ e) => {
    e.preventDefault();
    if (text === "") {
      setTextBad(true);
      showError("Type some text to share first", "upload");
      return;
    }
    setTextBad(false);
    const bytes = new TextEncoder().encode(text);
    if (await send(bytes, name.trim(), `${fmtBytes(bytes.length)} of text`)) {
      setText("");
    }
  };
  // A file dropped beside the zone must not make the browser leave the page.
  useEffect(() => {
    const stop = (/** @type {Event} */ e) => e.preventDefault();
    globalThis.addEventListener("dragover", stop);
    globalThis.addEventListener("drop", stop);
    return () => {
      globalThis.removeEventListener("dragover", stop);
      globalThis.removeEventListener("drop", stop);
    };
  }, []);

  return html`
    <section class="card" id="upload" aria-labelledby="upload-h"
      data-testid="upload-card">
      <div class="card-head">
        <h2 id="upload-h">Share a file</h2>
      </div>
      <div class="upload-grid">
        <label class=${`dropzone${over ? " over" : ""}${busy ? " busy" : ""}`}
          onDragEnter=${(/** @type {DragEvent} */ e) => {
            e.preventDefault();
            setOver(true);
          }}
          onDragOver=${(/** @type {DragEvent} */ e) => e.preventDefault()}
          onDragLeave=${() => setOver(false)} onDrop=${onDrop}>
            <input type="file" ref=${input} class="visually-hidden" disabled=${busy}
              data-testid="upload-file-input" onChange=${() => {
                const f = input.current?.files?.[0];
                if (f) sendFile(f);
                if (input.current) input.current.value = "";
              }} />
            <svg viewBox="0 0 24 24" aria-hidden="true" class="drop-icon">
              <path d="M12 16V4m0 0-5 5m5-5 5 5M4 16v3a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-3" />
            </svg>
            <span class="drop-title" data-testid="drop-title">${touch
              ? "Choose a file"
              : "Drop a file here"}</span>
            ${touch ? null : html`<span class="muted small">or click to choose one</span>`}
          </label>
        <form class="stack" novalidate onSubmit=${onText}>
          <div class="field">
            <label
              for="upload-name">Name <span class="muted small">(optional)</span></label>
            <input id="upload-name" data-testid="upload-name" type="text"
              maxlength="255"
              placeholder="notes.txt" autocomplete="off" value=${name}
              onInput=${(/** @type {any} */ e) => setName(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label
              for="upload-tags">Tags <span class="muted small">(optional, for search)</span></label>
            <input id="upload-tags" data-testid="upload-tags" type="text"
              placeholder="notes 2026" autocomplete="off" value=${tags}
              onInput=${(/** @type {any} */ e) => setTags(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="upload-text">Or text</label>
            <textarea id="upload-text" data-testid="upload-text" rows="3"
              value=${text}
              aria-invalid=${textBad ? "true" : undefined} placeholder="Type or paste text to share"
              onInput=${(/** @type {any} */ e) => setText(e.currentTarget.value)}></textarea>
          </div>
          <div class="row-end">
            <button type="submit" class="btn" data-testid="upload-text-submit"
              disabled=${busy}>
                Share text</button>
          </div>
        </form>
      </div>
      <${UploadResult} />
    </section>
  `;
}

/** What the upload under way does, or what the last one did. */
function UploadResult() {
  const s = uploadState.value;
  if (s.phase === "idle") {
    return html`<div class="result" data-testid="upload-result"></div>`;
  }
  if (s.phase === "sending" || s.phase === "storing") {
    return html`
      <div class="result" data-testid="upload-result" aria-live="polite">
        <p>${s.phase === "sending"
          ? `Sending ${s.what}: ${s.sent}%`
          : s.step || `Storing ${s.what}…`}</p>
        <progress max="100" value=${s.sent} data-testid="upload-progress"
          aria-label=${`Upload of ${s.what}`}></progress>
      </div>
    `;
  }
  if (s.phase === "failed") {
    return html`
      <div class="result bad" data-testid="upload-result" aria-live="polite">
        <p>Upload failed: ${s.error}</p>
      </div>
    `;
  }
  const d = /** @type {Record<string, any>} */ (s.result);
  const replicas = Object.entries(d.replicas ?? {});
  const link = shareLink(d.payloadId);
  return html`
    <div class="result ok" data-testid="upload-result" data-payload-id=${d
      .payloadId}
      aria-live="polite">
        <p class="result-title">${d.created === false ? "Already shared" : "Shared"}: ${s.name ||
          "(unnamed)"} · ${fmtBytes(d.size)} · 100%</p>
        <p class="id-line"><code class="js-payload-id">${d.payloadId}</code>
          <${CopyButton} text=${d
            .payloadId} label="Copy id" aria="Copy the payloadId" /></p>
        <p class="small">${replicas.length
          ? html`Copies pushed to ${
            replicas.map(([peer, n]) =>
              html`
                <${SourceChip} id=${peer} n=${n} />
              `
            )
          }`
          : "No other peer took a copy yet (no live peer to push to)."}</p>
        ${d.underReplicated > 0
          ? html`<p class="small">${
            plural(d.underReplicated, "piece")
          } got fewer copies than asked for.</p>`
          : null}
        <div class="actions start">
          <a class="btn small" href=${`#/payloads/${d.payloadId}`} data-testid="upload-open">
            Open and share</a>
          <${CopyButton} text=${link} label="Copy link" aria="Copy the share link" />
        </div>
      </div>
  `;
}

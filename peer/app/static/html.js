// (browser-checked)
/**
 * The one place the views get Preact, htm and signals from: `html` is htm bound to
 * Preact's `h`, so a view writes ``html`<p>${text}</p>` `` and Preact escapes the text.
 *
 * @module
 */
import { Fragment, h, render } from "./vendor/preact/preact.mjs";
import htm from "./vendor/htm/htm.mjs";

export { Fragment, h, render };
export { useEffect, useMemo, useRef, useState } from "./vendor/preact/hooks.mjs";
export {
  batch,
  computed,
  effect,
  signal,
  useComputed,
  useSignal,
} from "./vendor/signals/signals.mjs";

/** Tagged template that builds Preact elements. */
export const html = htm.bind(h);

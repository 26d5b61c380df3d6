/**
 * The built-in application server (port 5810): the web page people use to see this
 * peer, its peers and payloads, upload, download and watch the activity. The page's
 * assets live in `peer/app/static/` and are read once at start (they are embedded in
 * the compiled binary with `deno compile --include peer/app/static`).
 *
 * The page calls the peer's control API with relative URLs (`_p2p/status`), so it
 * works both at `/` of this peer's main server and under `/_p2p/peers/{peerId}/` of
 * any other peer's: the main server routes those to the control API itself (see
 * `gateway.ts`), so this server only serves files, like any app put behind a peer.
 * It is reached through the main server's reverse proxy and listens on loopback
 * unless the peer listens on one specific address. Opened directly (its port typed
 * into a browser), the page could reach no control API, so a request whose `Via`
 * does not name this peer's main server (`AppServerOptions.via`) is sent there with
 * a 307 to the same path on `AppServerOptions.main()`.
 *
 * The page runs on the control API's origin, so it holds the owner's power: its
 * answers carry a `Content-Security-Policy` (`APP_CSP`) that lets it load and call
 * nothing but its own origin, run no inline script, and be framed by no other page.
 *
 * @module
 */
import { Hono } from "hono";
import { errorMessage, P2pError } from "../proto/errors.ts";
import { toHex } from "../proto/ids.ts";
import { errorBody } from "../lib/http_api.ts";
import { viaEntries, viaEntryKey } from "../lib/http_relay/rewrite.ts";

/** How the app server tells requests that came through the main server. */
export interface AppServerOptions {
  /** The main server's `Via` entry (`viaToken()`): requests without it are redirected. */
  via: string;
  /** The main server's base URL, once it listens (undefined before: 503). */
  main(): string | undefined;
}

/**
 * The page's policy: scripts, styles and calls from its own origin only (images may
 * be `data:`/`blob:`), no plugins, no `<base>`, forms to itself, no framing.
 */
export const APP_CSP = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The page's modules (`text/javascript`), as files of `peer/app/static/`. */
const MODULES = [
  "app.js",
  "api.js",
  "answers.js",
  "state.js",
  "actions.js",
  "format.js",
  "html.js",
  "types.js",
  "ui.js",
  "view_upload.js",
  "view_payloads.js",
  "view_downloads.js",
  "view_chunkmap.js",
  "view_peers.js",
  "view_activity.js",
  "view_this_peer.js",
  "view_login.js",
  // Preact, htm, signals and a QR code encoder, vendored (see vendor/README.md).
  "vendor/preact/preact.mjs",
  "vendor/preact/hooks.mjs",
  "vendor/htm/htm.mjs",
  "vendor/signals/signals.mjs",
  "vendor/signals-core/signals-core.mjs",
  "vendor/qrcode-generator/qrcode.mjs",
];

/** The files of the page, by URL path. */
const ASSETS: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/views.css": { file: "views.css", type: "text/css; charset=utf-8" },
  "/layout.css": { file: "layout.css", type: "text/css; charset=utf-8" },
  "/favicon.svg": { file: "favicon.svg", type: "image/svg+xml" },
  ...Object.fromEntries(
    MODULES.map((
      file,
    ) => [`/${file}`, { file, type: "text/javascript; charset=utf-8" }]),
  ),
};

/** Reads the page's assets; a missing optional one (the icon) is left out. */
async function loadAssets(): Promise<
  Map<string, { body: Uint8Array; type: string; etag: string }>
> {
  const out = new Map<
    string,
    { body: Uint8Array; type: string; etag: string }
  >();
  for (const [path, a] of Object.entries(ASSETS)) {
    let body: Uint8Array;
    try {
      body = await Deno.readFile(
        new URL(`./app/static/${a.file}`, import.meta.url),
      );
    } catch (err) {
      if (a.file === "favicon.svg" && err instanceof Deno.errors.NotFound) {
        continue;
      }
      throw new P2pError(
        "app_unreadable",
        `Cannot read the web app's '${a.file}': ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", body as BufferSource),
    );
    const etag = `"${toHex(digest.subarray(0, 8))}"`;
    out.set(path, { body, type: a.type, etag });
  }
  return out;
}

/**
 * Builds the app: the page's assets. With `front`, only requests that came through
 * the main server are served; any other is redirected to the same path there.
 */
export async function createAppServer(front?: AppServerOptions): Promise<Hono> {
  const assets = await loadAssets();
  const app = new Hono();
  if (front) {
    const key = viaEntryKey(front.via);
    app.use("*", async (c, next) => {
      const hops = viaEntries(c.req.header("via"));
      if (hops.some((h) => viaEntryKey(h) === key)) return await next();
      const main = front.main();
      if (!main) {
        return c.json(errorBody("starting", "The peer is still starting"), 503);
      }
      const url = new URL(c.req.url);
      return c.body(null, 307, {
        location: `${main}${url.pathname}${url.search}`,
        "cache-control": "no-store",
      });
    });
  }
  app.get("*", (c) => {
    const a = assets.get(c.req.path);
    if (!a) {
      return c.json(errorBody("not_found", `Nothing at '${c.req.path}'`), 404);
    }
    if (c.req.header("if-none-match") === a.etag) {
      return c.body(null, 304, { etag: a.etag });
    }
    return c.body(a.body as Uint8Array<ArrayBuffer>, 200, {
      "content-type": a.type,
      "cache-control": "no-cache",
      etag: a.etag,
      "x-content-type-options": "nosniff",
      "content-security-policy": APP_CSP,
    });
  });
  app.all(
    "*",
    (c) =>
      c.json(
        errorBody(
          "method_not_allowed",
          `Method '${c.req.method}' is not allowed`,
        ),
        405,
      ),
  );
  return app;
}

/**
 * Helpers of the web app's browser tests: Debian's chromium driven by playwright-core
 * (headless), the one-time login link a peer prints, a fresh login link from its
 * control API, and where screenshots go (`.test-artifacts/web/`).
 *
 * @module
 */
import { chromium } from "playwright-core";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { REPO_ROOT } from "./_tracker_process.ts";
import type { PeerProcess } from "./_peer_process.ts";

/** Debian's chromium. */
export const CHROMIUM = "/usr/bin/chromium";
/** Where the browser tests keep their screenshots. */
export const ARTIFACTS = new URL(".test-artifacts/web/", REPO_ROOT);

/** Why the browser tests cannot run here, or undefined when they can. */
export async function chromiumMissing(): Promise<string | undefined> {
  try {
    await Deno.stat(CHROMIUM);
    return undefined;
  } catch {
    return `no browser at ${CHROMIUM} (apt-get install chromium)`;
  }
}

/** Command-line switches of the headless chromium (`evil.test` resolves to 127.0.0.2). */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  // A name an attacker points at the peer, as DNS rebinding does.
  "--host-resolver-rules=MAP evil.test 127.0.0.2",
];

/** A headless Chromium with a profile in `dir`, laptop-sized. */
export function launchPersistent(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(`${dir}/chromium-profile`, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
    args: CHROMIUM_ARGS,
  });
}

/** A headless Chromium for contexts of several sizes (`phone()`, `laptop()`). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A phone-sized context (390×844, touch screen). */
export function phone(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({
    viewport: { width: 390, height: 844 },
    hasTouch: true,
    isMobile: true,
    acceptDownloads: true,
  });
}

/** A laptop-sized context (1280×800, mouse). */
export function laptop(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
}

/**
 * The one-time login link a peer prints just after its listening line. The line
 * comes at once; this waits for it in short steps, for at most 10 s.
 */
export async function loginLink(peer: PeerProcess): Promise<string> {
  const re = /^p2p peer: log in to the web app: (\S+) /m;
  for (let i = 0; i < 200; i++) {
    const m = re.exec(peer.stdout());
    if (m) return m[1];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`No login link in the output of ${peer.http}: ${peer.stdout()}`);
}

/** A new one-time login link, from the peer's control API (as `p2p login` gets it). */
export async function newLoginLink(peer: PeerProcess): Promise<string> {
  const res = await fetch(`${peer.http}/_p2p/login-links`, { method: "POST", headers: peer.auth });
  if (!res.ok) throw new Error(`POST /_p2p/login-links: HTTP ${res.status} ${await res.text()}`);
  return `${peer.http}${(await res.json()).path}`;
}

/** Collects the page errors and CSP complaints of a context, to assert there were none. */
export function watchErrors(context: BrowserContext): string[] {
  const errors: string[] = [];
  context.on(
    "page",
    (p: Page) => p.on("pageerror", (e) => errors.push(`${p.url()}: ${e.message}`)),
  );
  context.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) errors.push(`CSP: ${m.text()}`);
  });
  return errors;
}

/** Saves a screenshot of `page` as `.test-artifacts/web/NAME.png`. */
export async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(`${name}.png`, ARTIFACTS).pathname, fullPage });
}

/**
 * Waits until `peer` knows every peer of `ids` (its `/_p2p/peers`), in 100 ms steps
 * for at most 15 s.
 */
export async function waitForPeers(peer: PeerProcess, ids: string[]): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const res = await fetch(`${peer.http}/_p2p/peers`, { headers: peer.auth });
    const known = new Set(
      ((await res.json()).peers as { peerId: string }[]).map((p) => p.peerId),
    );
    if (ids.every((id) => known.has(id))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${peer.http} did not learn of ${ids.join(", ")} in 15 s`);
}

/**
 * The built-in web app in a real browser: Debian's chromium, headless, driven by
 * playwright-core, against two real peer processes on 127.0.0.2 and 127.0.0.3. Text
 * uploaded on peer A's page shows up on peer B's page, is downloaded there with the
 * page's progress, saved, and its bytes checked. Screenshots are kept in
 * `.test-artifacts/web/`.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { REPO_ROOT, tempDir } from "./_tracker_process.ts";
import { spawnPeer } from "./_peer_process.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL(".test-artifacts/web/", REPO_ROOT);

async function chromiumMissing(): Promise<string | undefined> {
  try {
    await Deno.stat(CHROMIUM);
    return undefined;
  } catch {
    return `no browser at ${CHROMIUM} (apt-get install chromium)`;
  }
}

const missing = await chromiumMissing();
if (missing) console.log(`web app browser test skipped: ${missing}`);

Deno.test({
  name:
    "web app: text uploaded on peer A's page is listed, downloaded and saved on peer B's page; errors are shown",
  ignore: missing !== undefined,
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await using dir = await tempDir("p2p-web-");
    await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", name: "alice" });
    await using b = await spawnPeer({
      dataDir: `${dir.path}/b`,
      host: "127.0.0.3",
      name: "bob",
      seeds: [`${a.host}:${a.port}`],
    });
    const context = await chromium.launchPersistentContext(`${dir.path}/chromium-profile`, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      viewport: { width: 1280, height: 900 },
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
      ],
    });
    try {
      context.setDefaultTimeout(20_000);
      const errors: string[] = [];
      const pageA = await context.newPage();
      pageA.on("pageerror", (e) => errors.push(`A: ${e.message}`));
      await pageA.goto(`${a.http}/`);
      await pageA.getByTestId("this-peer-id").filter({ hasText: a.peerId }).waitFor();

      const text = `Hello from alice's page, ${crypto.randomUUID()}\nsecond line: ünïcødé ✓\n`;
      await pageA.getByTestId("upload-name").fill("greeting.txt");
      await pageA.getByTestId("upload-text").fill(text);
      await pageA.getByTestId("upload-text-submit").click();
      const result = pageA.locator("[data-testid=upload-result][data-payload-id]");
      await result.waitFor();
      const payloadId = (await result.getAttribute("data-payload-id"))!;
      assert.match(payloadId, /^[0-9a-f]{64}$/);
      assert.ok((await result.textContent())?.includes(payloadId));
      await pageA.locator(`[data-testid=payload-row][data-payload-id="${payloadId}"]`).waitFor();
      await pageA.screenshot({
        path: new URL("a-uploaded.png", ARTIFACTS).pathname,
        fullPage: true,
      });

      const pageB = await context.newPage();
      pageB.on("pageerror", (e) => errors.push(`B: ${e.message}`));
      await pageB.goto(`${b.http}/`);
      await pageB.getByTestId("this-peer-id").filter({ hasText: b.peerId }).waitFor();
      // B holds none of it (no replicas in tests): it learns of it from A and downloads.
      const row = pageB.locator(`[data-testid=payload-row][data-payload-id="${payloadId}"]`);
      await row.waitFor();
      assert.ok((await row.textContent())?.includes("greeting.txt"));
      await row.getByTestId("payload-download").click();
      const done = pageB.locator(
        `li[data-payload-id="${payloadId}"] [data-testid=download-result]`,
      );
      await done.waitFor();
      assert.doesNotMatch((await done.textContent()) ?? "", /error|fail/i);
      const save = row.getByTestId("payload-save");
      await save.waitFor();
      await pageB.getByTestId("chunk-map").waitFor();
      await pageB.screenshot({
        path: new URL("b-downloaded.png", ARTIFACTS).pathname,
        fullPage: true,
      });

      const [download] = await Promise.all([pageB.waitForEvent("download"), save.click()]);
      assert.equal(download.suggestedFilename(), "greeting.txt");
      const saved = await Deno.readTextFile((await download.path())!);
      assert.equal(saved, text);

      // B's own store has it now, verified.
      const stored = await (await fetch(`${b.http}/_p2p/payloads/${payloadId}/content`)).text();
      assert.equal(stored, text);

      // Errors are shown, not swallowed: a malformed id is refused on the page, and an
      // unknown one gets the peer's answer.
      await pageB.locator("#get-id").fill("xyz");
      await pageB.locator("#get-form button[type=submit]").click();
      await pageB.getByTestId("error").filter({ hasText: "hex digits" }).waitFor();
      const unknown = "ab".repeat(32);
      await pageB.locator("#get-id").fill(unknown);
      await pageB.locator("#get-form button[type=submit]").click();
      const failed = pageB.locator(
        `li[data-payload-id="${unknown}"] [data-testid=download-result]`,
      );
      await failed.waitFor();
      assert.match((await failed.textContent()) ?? "", /Cannot find the manifest/);

      // The same page through A's proxy, by B's peerId, on a phone-sized screen.
      const phone = await context.newPage();
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${a.http}/_p2p/peers/${b.peerId}/`);
      await phone.getByTestId("this-peer-id").filter({ hasText: b.peerId }).waitFor();
      await phone.locator(`[data-testid=payload-row][data-payload-id="${payloadId}"]`).waitFor();
      await phone.getByTestId("activity-row").first().waitFor();
      await phone.screenshot({
        path: new URL("b-via-a-phone.png", ARTIFACTS).pathname,
        fullPage: true,
      });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  },
});

/**
 * The web app's search box in a real browser (Debian's chromium through
 * playwright-core) against a real peer process: results come as the user types,
 * with the matched words marked, the holders, and a Download link for a file
 * complete here; a bad query shows the peer's message; clearing the box clears them.
 */
import assert from "node:assert/strict";
import { tempDir } from "./_tracker_process.ts";
import { p2pClient, spawnPeer } from "./_peer_process.ts";
import { chromiumMissing, launchPersistent, loginLink, shot, watchErrors } from "./_web_app.ts";

const missing = await chromiumMissing();
if (missing) console.log(`web app search test skipped: ${missing}`);

Deno.test({
  name:
    "web app: the header's search box shows hits as the user types, marked, with holders and a download",
  ignore: missing !== undefined,
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using dir = await tempDir("p2p-web-search-");
    await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", name: "alice" });
    const text = "Minutes of the lighthouse committee: the lamp was repaired.";
    const put = await p2pClient(
      ["put", "-", "--name", "minutes.txt", "--node", a.http, "--token", a.token],
      new TextEncoder().encode(text),
    );
    assert.equal(put.code, 0, put.stderr);
    const id = put.stdout.trim().split("\n")[0];
    const context = await launchPersistent(dir.path);
    try {
      context.setDefaultTimeout(20_000);
      const errors = watchErrors(context);
      const page = await context.newPage();
      await page.goto(await loginLink(a));
      const box = page.getByTestId("search-input");
      await box.waitFor();
      // Typed key by key: the page searches once the typing pauses.
      await box.pressSequentially("lightho*", { delay: 20 });
      const hit = page.getByTestId("search-hit");
      await hit.waitFor();
      assert.equal(await hit.count(), 1);
      assert.equal(await hit.getAttribute("data-payload-id"), id);
      assert.deepEqual(await hit.locator("mark").allTextContents(), ["lighthouse"]);
      assert.equal(await hit.getByTestId("search-holders").textContent(), "Held by this peer");
      const get = hit.getByTestId("search-get");
      assert.equal(await get.getAttribute("download"), "minutes.txt");
      assert.match(String(await get.getAttribute("href")), new RegExp(`${id}/content`));
      await shot(page, "search-hit");
      // Another tab: the box is in the header of every page.
      await page.getByTestId("tab-peers").click();
      await box.fill('"lamp');
      await page.getByTestId("search-error").waitFor();
      assert.match(String(await page.getByTestId("search-error").textContent()), /never closed/);
      await box.fill("zeppelin");
      await page.getByTestId("search-empty").waitFor();
      await box.fill("");
      await page.getByTestId("search-results").waitFor({ state: "detached" });
      // Text shared from the page with tags is found by them.
      await page.getByTestId("tab-payloads").click();
      await page.getByTestId("upload-name").fill("keeper.txt");
      await page.getByTestId("upload-tags").fill("maritime, logs");
      await page.getByTestId("upload-text").fill("The keeper's log.");
      await page.getByRole("button", { name: "Share text" }).click();
      await page.locator(".result-title").filter({ hasText: "keeper.txt" }).waitFor();
      await box.fill("tag:maritime");
      await page.getByTestId("search-hit").filter({ hasText: "keeper.txt" }).waitFor();
      assert.deepEqual(errors.filter((e) => !e.includes("400")), []);
    } finally {
      await context.close();
    }
  },
});

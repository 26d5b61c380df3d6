/**
 * The web app at phone (390×844, touch) and laptop (1280×800) sizes, in Debian's
 * chromium driven by playwright-core, against three real peer processes: alice
 * pushes one copy of each piece of what is shared on her page to bob and carol. On
 * the phone the upload comes first, the tabs fit, it says "Choose a file", and this
 * peer's diagnostics wait on their tab; a file shared there shows its percentage, and
 * the name field is empty again. The share link opens that file with its QR code,
 * and one click saves it under its name. A peer holding only pushed pieces offers
 * Download, never Resume, and one click gets the whole file; Resume comes only once a
 * download was started there. Screenshots are kept in `.test-artifacts/web/`.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { tempDir } from "./_tracker_process.ts";
import { type PeerProcess, spawnPeer } from "./_peer_process.ts";
import {
  chromiumMissing,
  laptop,
  launchBrowser,
  newLoginLink,
  phone,
  shot,
  waitForPeers,
  watchErrors,
} from "./_web_app.ts";

const missing = await chromiumMissing();
if (missing) console.log(`web app layout test skipped: ${missing}`);

/** Chromium's network emulation without limits. */
const NO_LIMIT = { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 };

/** Pieces held by `peer` of a payload (0 when it has none). */
async function held(peer: PeerProcess, payloadId: string): Promise<number> {
  const res = await fetch(`${peer.http}/_p2p/payloads`, { headers: peer.auth });
  const list = (await res.json()).payloads as { payloadId: string; held: number }[];
  return list.find((p) => p.payloadId === payloadId)?.held ?? 0;
}

Deno.test({
  name:
    "web app: on a phone the upload comes first and the share link opens the file with a QR code; a peer with pushed pieces offers Download, not Resume, and one click saves the file under its name",
  ignore: missing !== undefined,
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using dir = await tempDir("p2p-web-layout-");
    await using a = await spawnPeer({
      dataDir: `${dir.path}/a`,
      host: "127.0.0.2",
      name: "alice",
      replicas: 1,
    });
    const seeds = [`${a.host}:${a.port}`];
    await using b = await spawnPeer({
      dataDir: `${dir.path}/b`,
      host: "127.0.0.3",
      name: "bob",
      seeds,
    });
    await using c = await spawnPeer({
      dataDir: `${dir.path}/c`,
      host: "127.0.0.4",
      name: "carol",
      seeds,
    });
    await waitForPeers(a, [b.peerId, c.peerId]);
    const browser = await launchBrowser();
    try {
      const small = await phone(browser);
      small.setDefaultTimeout(20_000);
      const errors = watchErrors(small);
      const p = await small.newPage();
      await p.goto(`${a.http}/`);
      // Logged in with the token.
      await p.locator("#login-token").fill(a.token);
      await p.locator("#login-submit").click();
      await p.locator(`[data-testid=peer-name][data-peer-id="${a.peerId}"]`).waitFor();

      // What people came to do comes first: the upload, in the first screen, above the
      // list; this peer's diagnostics are on their own tab.
      const upload = (await p.getByTestId("upload-card").boundingBox())!;
      const files = (await p.locator("#payloads").boundingBox())!;
      assert.ok(upload.y < files.y, `upload at ${upload.y}, files at ${files.y}`);
      assert.ok(upload.y + 120 < 844, `upload at ${upload.y} is below the first screen`);
      assert.equal(await p.getByTestId("this-peer-id").count(), 0);
      assert.equal(await p.getByTestId("drop-title").textContent(), "Choose a file");
      // The tabs fit the screen, none cut off.
      const tabs = await p.locator("nav.tabs a").evaluateAll((els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return { left: r.left, right: r.right, fits: e.scrollWidth <= e.clientWidth };
        })
      );
      assert.equal(tabs.length, 4);
      for (const t of tabs) {
        assert.ok(t.left >= 0 && t.right <= 390 && t.fits, JSON.stringify(tabs));
      }
      await shot(p, "phone-first-screen", false);
      /** Whether the page is as wide as the phone's screen (nothing to scroll sideways). */
      const fits = (page: typeof p) =>
        page.evaluate("document.documentElement.scrollWidth <= innerWidth");
      assert.ok(await fits(p));

      // A 16 MiB file (16 pieces), shared under a name typed for it.
      const body = new Uint8Array(16 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 65536) {
        crypto.getRandomValues(body.subarray(i, i + 65536));
      }
      const cdp = await small.newCDPSession(p);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", {
        ...NO_LIMIT,
        uploadThroughput: 4 * 1024 * 1024,
      });
      await p.getByTestId("upload-name").fill("holiday.bin");
      await p.getByTestId("upload-file-input").setInputFiles({
        name: "IMG_0001.bin",
        mimeType: "application/octet-stream",
        buffer: Buffer.from(body.buffer),
      });
      // Sent slowly (Chromium's network emulation, 4 MiB/s up), the page shows how far it is.
      const sending = p.getByTestId("upload-result").getByText(
        /^Sending 'holiday\.bin' \(16\.0 MiB\): [1-9]\d?%$/,
      );
      await sending.waitFor();
      assert.ok(Number(await p.getByTestId("upload-progress").getAttribute("value")) > 0);
      await cdp.send("Network.emulateNetworkConditions", { ...NO_LIMIT, uploadThroughput: -1 });
      const result = p.locator("[data-testid=upload-result][data-payload-id]");
      await result.waitFor({ timeout: 60_000 });
      const id = (await result.getAttribute("data-payload-id"))!;
      assert.match((await result.textContent()) ?? "", /holiday\.bin · 16\.0 MiB · 100%/);
      assert.equal(await p.getByTestId("upload-name").inputValue(), "");
      await shot(p, "phone-uploaded");
      assert.ok(await fits(p));

      // The share link opens the file, with a QR code of the link, and one click saves it.
      const shared = await small.newPage();
      await shared.goto(`${a.http}/#/payloads/${id}`);
      const detail = shared.locator(`[data-testid=payload-detail][data-payload-id="${id}"]`);
      await detail.waitFor();
      await detail.getByText("holiday.bin").first().waitFor();
      await shared.getByTestId("share-qr").waitFor();
      assert.equal(
        await shared.getByTestId("share-link").inputValue(),
        `${a.http}/#/payloads/${id}`,
      );
      assert.ok((await detail.boundingBox())!.y < 844);
      await shot(shared, "phone-share-link");
      assert.ok(await fits(shared));
      const [saved] = await Promise.all([
        shared.waitForEvent("download"),
        detail.getByTestId("payload-save").click(),
      ]);
      assert.equal(saved.suggestedFilename(), "holiday.bin");
      assert.deepEqual(await Deno.readFile((await saved.path())!), body);

      // Bob and carol each hold the pieces alice pushed to them: the one that holds
      // only some of them (the other, if any, holds all) never started a download.
      const [hb, hc] = [await held(b, id), await held(c, id)];
      assert.equal(hb + hc, 16, `bob holds ${hb} pieces, carol ${hc}`);
      const partial = hb < 16 ? b : c;
      const pieces = partial === b ? hb : hc;
      const big = await laptop(browser);
      big.setDefaultTimeout(20_000);
      errors.push(...watchErrors(big));
      const q = await big.newPage();
      await q.goto(await newLoginLink(partial));
      const row = q.locator(`[data-testid=payload-row][data-payload-id="${id}"]`);
      await row.waitFor();
      await row.getByText(`${pieces} of 16 pieces here`).waitFor();
      const button = row.getByTestId("payload-download");
      assert.equal((await button.textContent())?.trim(), "Download");
      assert.equal(await q.getByText("Resume").count(), 0);
      await shot(q, "laptop-pushed-copy");
      // One click: the peer fetches the rest, then the browser saves it under its name.
      const [got] = await Promise.all([q.waitForEvent("download"), button.click()]);
      assert.equal(got.suggestedFilename(), "holiday.bin");
      assert.deepEqual(await Deno.readFile((await got.path())!), body);
      await row.getByTestId("payload-save").waitFor();
      await row.getByText("all here").waitFor();
      const card = q.locator(`li[data-payload-id="${id}"] [data-testid=download-result]`);
      await card.waitFor();
      assert.match(
        (await card.textContent()) ?? "",
        new RegExp(`${pieces} pieces? w(as|ere) already here`),
      );
      // The same link opens the file on this peer too.
      await q.goto(`${partial.http}/#/payloads/${id}`);
      await q.locator(`[data-testid=payload-detail][data-payload-id="${id}"]`).waitFor();
      await q.getByTestId("share-qr").waitFor();
      await shot(q, "laptop-share-link");
      // The other tabs, in plain words: peers and how they became known.
      await q.getByTestId("tab-peers").click();
      const alice = q.locator(`[data-testid=peer-row][data-peer-id="${a.peerId}"]`);
      await alice.waitFor();
      assert.match((await alice.textContent()) ?? "", /given at start/);
      await shot(q, "laptop-peers");
      await q.getByTestId("tab-peer").click();
      await q.getByTestId("this-peer-id").filter({ hasText: partial.peerId }).waitFor();
      await shot(q, "laptop-this-peer");

      // The other one holds the rest of the pieces. With alice and the first one gone,
      // a download started on its page cannot finish: it fails in words, and now that a
      // download was started here, its row offers Resume.
      const other = partial === b ? c : b;
      await a.kill();
      await partial.kill();
      const o = await big.newPage();
      await o.goto(await newLoginLink(other));
      const otherRow = o.locator(`[data-testid=payload-row][data-payload-id="${id}"]`);
      await otherRow.getByText(`${16 - pieces} of 16 pieces here`).waitFor();
      await otherRow.getByTestId("payload-download").filter({ hasText: "Download" }).click();
      const failed = o.locator(`li[data-payload-id="${id}"] [data-testid=download-result]`);
      await failed.waitFor({ timeout: 60_000 });
      assert.match((await failed.textContent()) ?? "", /Download failed: /);
      await otherRow.getByTestId("payload-download").filter({ hasText: "Resume" }).waitFor();
      await shot(o, "laptop-resume");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  },
});

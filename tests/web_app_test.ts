/**
 * The built-in web app in a real browser: Debian's chromium, headless, driven by
 * playwright-core, against two real peer processes on 127.0.0.2 and 127.0.0.3. Text
 * uploaded on peer A's page shows up on peer B's page, where one click downloads it
 * to this peer and saves it in the browser under its name; each page first logs in,
 * with the token form or the one-time link the peer printed. Then the attacks on the
 * control API from a browser: a page of another origin, a name pointed at the peer
 * (DNS rebinding) and another peer's app served through this peer all fail.
 * Screenshots are kept in `.test-artifacts/web/`. The phone and laptop layouts, share
 * links and pushed copies are `web_app_layout_test.ts`'s.
 */
import assert from "node:assert/strict";
import { tempDir } from "./_tracker_process.ts";
import { type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { serveLocal } from "./_serve.ts";
import {
  ARTIFACTS,
  chromiumMissing,
  launchPersistent,
  loginLink,
  shot,
  watchErrors,
} from "./_web_app.ts";

const missing = await chromiumMissing();
if (missing) console.log(`web app browser test skipped: ${missing}`);

/** The activity records of `type` on `peer`, read with its token. */
async function records(peer: PeerProcess, type: string): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${peer.http}/_p2p/log?type=${type}&limit=1000`, {
    headers: peer.auth,
  });
  return (await res.json()).records;
}

Deno.test({
  name:
    "web app: text uploaded on peer A's page is listed on it, and one click on peer B's page downloads it and saves it under its name; errors are shown",
  ignore: missing !== undefined,
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using dir = await tempDir("p2p-web-");
    await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", name: "alice" });
    await using b = await spawnPeer({
      dataDir: `${dir.path}/b`,
      host: "127.0.0.3",
      name: "bob",
      seeds: [`${a.host}:${a.port}`],
    });
    const context = await launchPersistent(dir.path);
    try {
      context.setDefaultTimeout(20_000);
      // The page's own policy (APP_CSP) never gets in its way.
      const errors = watchErrors(context);
      const pageA = await context.newPage();
      // No cookie yet: the page asks for the token; a wrong one is refused.
      await pageA.goto(`${a.http}/`);
      const token = pageA.locator("#login-token");
      await token.waitFor();
      await token.fill("not-the-token");
      await pageA.locator("#login-submit").click();
      await pageA.locator("#login-error").filter({ hasText: "not the peer's token" }).waitFor();
      await shot(pageA, "a-login", false);
      await token.fill(a.token);
      await pageA.locator("#login-submit").click();
      await pageA.locator(`[data-testid=peer-name][data-peer-id="${a.peerId}"]`).waitFor();
      await pageA.locator("#login").waitFor({ state: "hidden" });
      const page = await fetch(`${a.http}/`);
      await page.body?.cancel();
      assert.match(page.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
      // Every module of the page is served, under the same policy.
      const mod = await fetch(`${a.http}/vendor/preact/preact.mjs`);
      assert.match(mod.headers.get("content-type") ?? "", /^text\/javascript/);
      assert.match(await mod.text(), /createElement/);
      // The cookie holds it, out of reach of scripts.
      assert.equal(await pageA.evaluate("document.cookie"), "");
      const [cookie] = await context.cookies(a.http);
      assert.deepEqual([cookie.name, cookie.value, cookie.httpOnly, cookie.sameSite], [
        "p2p_token",
        a.token,
        true,
        "Strict",
      ]);

      const text = `Hello from alice's page, ${crypto.randomUUID()}\nsecond line: ünïcødé ✓\n`;
      await pageA.getByTestId("upload-name").fill("greeting.txt");
      await pageA.getByTestId("upload-text").fill(text);
      await pageA.getByTestId("upload-text-submit").click();
      const result = pageA.locator("[data-testid=upload-result][data-payload-id]");
      await result.waitFor();
      const payloadId = (await result.getAttribute("data-payload-id"))!;
      assert.match(payloadId, /^[0-9a-f]{64}$/);
      const said = (await result.textContent()) ?? "";
      assert.ok(said.includes(payloadId), said);
      assert.match(said, /greeting\.txt .*100%/);
      // The form is ready for the next one: no name or text left over.
      assert.equal(await pageA.getByTestId("upload-name").inputValue(), "");
      assert.equal(await pageA.getByTestId("upload-text").inputValue(), "");
      await pageA.locator(`[data-testid=payload-row][data-payload-id="${payloadId}"]`).waitFor();
      await shot(pageA, "a-uploaded");

      const pageB = await context.newPage();
      // B's page logs in with the one-time link B printed; the link works once.
      const link = await loginLink(b);
      await pageB.goto(link);
      assert.equal(pageB.url(), `${b.http}/`);
      await pageB.locator(`[data-testid=peer-name][data-peer-id="${b.peerId}"]`).waitFor();
      const spent = await fetch(link, { redirect: "manual" });
      assert.equal(spent.status, 401);
      assert.equal((await spent.json()).error.code, "login_expired");
      // B holds none of it (no replicas in this test) and cannot list what A holds
      // (that needs the peer link): it gets it by id, and one click saves it.
      await pageB.locator("#get-id").fill(payloadId);
      const [download] = await Promise.all([
        pageB.waitForEvent("download"),
        pageB.locator("#get-form button[type=submit]").click(),
      ]);
      assert.equal(download.suggestedFilename(), "greeting.txt");
      assert.equal(await Deno.readTextFile((await download.path())!), text);
      const done = pageB.locator(
        `li[data-payload-id="${payloadId}"] [data-testid=download-result]`,
      );
      await done.waitFor();
      assert.doesNotMatch((await done.textContent()) ?? "", /error|fail/i);
      assert.match(
        (await pageB.locator(`li[data-payload-id="${payloadId}"] progress`).getAttribute(
          "value",
        )) ?? "",
        /^100$/,
      );
      const row = pageB.locator(`[data-testid=payload-row][data-payload-id="${payloadId}"]`);
      await row.waitFor();
      assert.ok((await row.textContent())?.includes("greeting.txt"));
      await row.getByTestId("payload-save").waitFor();
      await shot(pageB, "b-downloaded");

      // B's own store has it now, verified.
      const stored = await (await fetch(`${b.http}/_p2p/payloads/${payloadId}/content`, {
        headers: b.auth,
      })).text();
      assert.equal(stored, text);

      // Errors are shown, not swallowed: what the peer cannot resolve is refused in its
      // words (the peer resolves typed ids), and an
      // unknown one gets the peer's answer.
      await pageB.locator("#get-id").fill("xyz");
      await pageB.locator("#get-form button[type=submit]").click();
      await pageB.getByTestId("error").filter({ hasText: "No payload 'xyz'" }).waitFor();
      const unknown = "ab".repeat(32);
      await pageB.locator("#get-id").fill(unknown);
      await pageB.locator("#get-form button[type=submit]").click();
      const failed = pageB.locator(
        `li[data-payload-id="${unknown}"] [data-testid=download-result]`,
      );
      await failed.waitFor();
      assert.match((await failed.textContent()) ?? "", /Cannot find the manifest/);

      // A's own page under its own peerId prefix, on a phone-sized screen: the files
      // first, the activity and this peer's diagnostics on their tabs.
      const small = await context.newPage();
      await small.setViewportSize({ width: 390, height: 844 });
      await small.goto(`${a.http}/_p2p/peers/${a.peerId}/`);
      await small.locator(`[data-testid=payload-row][data-payload-id="${payloadId}"]`).waitFor();
      await shot(small, "a-own-prefix-phone");
      await small.getByTestId("tab-activity").click();
      // In words, with the routine traffic (the peers' questions) folded away.
      const put = small.locator("[data-testid=activity-row][data-type='payload.put']");
      await put.waitFor();
      assert.match((await put.textContent()) ?? "", /Shared greeting\.txt/);
      await small.getByTestId("activity-routine").first().waitFor();
      await shot(small, "a-own-prefix-phone-activity");
      await small.getByTestId("tab-peer").click();
      await small.getByTestId("this-peer-id").filter({ hasText: a.peerId }).waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  },
});

/** What the pages below report of their attempt, in their title. */
const ATTACK_PAGE = (target: string) =>
  `<!doctype html><html><head><title>pending</title></head>
<body><form id="f" method="POST" action="${target}/_p2p/discover" enctype="text/plain"
 target="sink"><input name='{"range":"127.0.0.250/32","x":"' value='"}'></form>
<iframe name="sink"></iframe>
<script>
(async () => {
  let seen;
  try {
    const res = await fetch("${target}/_p2p/status", { credentials: "include" });
    seen = "read " + res.status + " " + (await res.text()).slice(0, 80);
  } catch (err) {
    seen = "blocked";
  }
  try {
    // A simple request: no preflight, so it reaches the peer; the peer must refuse it.
    await fetch("${target}/_p2p/discover", {
      method: "POST",
      mode: "no-cors",
      credentials: "include",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ range: "127.0.0.250/32" }),
    });
  } catch {}
  document.getElementById("f").submit();
  document.title = seen;
})();
</script></body></html>`;

Deno.test({
  name:
    "web app: a page of another origin, a name pointed at the peer and another peer's app cannot use the logged-in peer's control API",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await using dir = await tempDir("p2p-web-");
    await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", name: "alice" });
    // A page of another site, on 127.0.0.5, that targets alice.
    await using evil = await serveLocal(
      () => new Response(ATTACK_PAGE(a.http), { headers: { "content-type": "text/html" } }),
      "127.0.0.5",
    );
    // Carol's app serves the same page: alice serves it by carol's peerId.
    await using carolApp = await serveLocal(
      () => new Response(ATTACK_PAGE(""), { headers: { "content-type": "text/html" } }),
      "127.0.0.4",
    );
    await using c = await spawnPeer({
      dataDir: `${dir.path}/c`,
      host: "127.0.0.4",
      name: "carol",
      seeds: [`${a.host}:${a.port}`],
      args: ["--app", carolApp.url],
    });
    const context = await launchPersistent(dir.path);
    try {
      context.setDefaultTimeout(20_000);
      // The owner is logged in to alice: the cookie is there for any request that
      // the browser lets it go with.
      const own = await context.newPage();
      await own.goto(await loginLink(a));
      await own.locator(`[data-testid=peer-name][data-peer-id="${a.peerId}"]`).waitFor();

      // 1. Another origin: nothing read; the GET and both POSTs (fetch and form) are
      // refused with 403 before any work.
      const page = await context.newPage();
      await page.goto(`${evil.url}/`);
      await page.waitForFunction('document.title !== "pending"');
      assert.equal(await page.title(), "blocked");
      const refusedOrigin = async () =>
        (await records(a, "control.refused")).filter((r) => r.code === "forbidden_origin");
      for (let i = 0; (await refusedOrigin()).length < 3 && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const refused = await refusedOrigin();
      assert.deepEqual(
        refused.map((r) => `${r.status} ${r.method} ${r.path}`).sort(),
        ["403 GET /_p2p/status", "403 POST /_p2p/discover", "403 POST /_p2p/discover"],
      );
      assert.deepEqual(await records(a, "discover"), []);

      // 2. DNS rebinding: a name of the attacker's that points at alice reaches nothing.
      const rebound = await context.newPage();
      const res = await rebound.goto(`http://evil.test:${new URL(a.http).port}/_p2p/status`);
      assert.equal(res?.status(), 421);
      assert.match(await rebound.textContent("body") ?? "", /misdirected_host/);

      // 3. Carol's page through alice, by carol's id: sandboxed, it runs in an opaque
      // origin; alice's status stays out of its reach (and the cookie does not go).
      const known = async () =>
        (await (await fetch(`${a.http}/_p2p/peers`, { headers: a.auth })).json()).peers
          .some((p: { peerId: string }) => p.peerId === c.peerId);
      for (let i = 0; !(await known()) && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const other = await context.newPage();
      const answer = await other.goto(`${a.http}/_p2p/peers/${c.peerId}/page.html`);
      assert.match(answer?.headers()["content-security-policy"] ?? "", /^sandbox /);
      await other.waitForFunction('document.title !== "pending"');
      assert.equal(await other.title(), "blocked");
      assert.equal(await other.evaluate("self.origin"), "null");
      await shot(other, "sandboxed-other-app", false);
      // The owner's own page still works.
      await own.reload();
      await own.locator(`[data-testid=peer-name][data-peer-id="${a.peerId}"]`).waitFor();
    } finally {
      await context.close();
    }
  },
});

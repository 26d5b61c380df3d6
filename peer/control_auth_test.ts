import assert from "node:assert/strict";
import { createControlApp } from "./control.ts";
import { ControlAuth, cookieValue, LOGIN_CODE_TTL_MS, randomToken } from "./control_token.ts";
import { COMPLETE, fakeNode, OWNER_TOKEN, ownerAuth } from "./_control_fake.ts";
import { ErrorBody } from "../proto/error_body.ts";
import { LoginLinkAnswer } from "../proto/control.ts";
import type { ActivityRecord } from "../proto/activity.ts";
import type { PeerLog } from "./activity.ts";

/** Every route of the control API, as a request. */
const ROUTES: [string, string][] = [
  ["GET", "/_p2p/status"],
  ["GET", "/_p2p/peers"],
  ["POST", "/_p2p/discover"],
  ["GET", "/_p2p/payloads"],
  ["GET", "/_p2p/network/payloads"],
  ["GET", "/_p2p/events"],
  ["POST", "/_p2p/payloads?name=x"],
  ["POST", `/_p2p/downloads/${COMPLETE}`],
  ["GET", `/_p2p/payloads/${COMPLETE}/content`],
  ["GET", `/_p2p/payloads/${COMPLETE}/where`],
  ["GET", "/_p2p/log"],
  ["GET", "/_p2p/log?follow=1"],
  ["POST", "/_p2p/logout"],
  ["POST", "/_p2p/login-links"],
  ["GET", "/_p2p/no-such-route"],
];

/**
 * The `control.refused` records of a log once it is closed, so that the refusals it
 * counted past the first five a minute (`PeerLog.refused()`) are written too, and
 * how many refusals they stand for.
 */
function closedRefusals(log: PeerLog): { records: ActivityRecord[]; count: number } {
  log.close();
  const records = log.query({ type: "control.refused", limit: 1000 }).records;
  const count = records.reduce((n, r) => n + (r.folded ? Number(r.count) : 1), 0);
  return { records, count };
}

/** The status and error code of an answer, its body checked against `ErrorBody`. */
async function refusal(res: Response): Promise<[number, string]> {
  return [res.status, ErrorBody.parse(await res.json()).error.code];
}

Deno.test("createControlApp() answers every route with 401 unauthorized without the owner's token, and records each refusal", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  const wrong = randomToken();
  const tries: [string, Record<string, string>][] = [
    ["no token", {}],
    ["a wrong bearer token", { authorization: `Bearer ${wrong}` }],
    ["a wrong cookie", { cookie: `p2p_token=${wrong}` }],
    ["the token as Basic", { authorization: `Basic ${OWNER_TOKEN}` }],
    ["the token in another cookie", { cookie: `other=${OWNER_TOKEN}` }],
  ];
  for (const [method, path] of ROUTES) {
    for (const [what, headers] of tries) {
      const res = await app.request(path, {
        method,
        headers,
        body: method === "POST" ? "{}" : null,
      });
      assert.deepEqual(await refusal(res), [401, "unauthorized"], `${method} ${path} with ${what}`);
    }
  }
  // The first five are records of their own; the rest are counted into one.
  const first = node.log.query({ type: "control.refused", limit: 1000 }).records;
  assert.equal(first.length, 5);
  assert.deepEqual(
    { ...first.at(-1), id: 0, ts: "" },
    {
      id: 0,
      ts: "",
      type: "control.refused",
      status: 401,
      code: "unauthorized",
      method: "GET",
      path: "/_p2p/status",
      from: "loopback",
    },
  );
  const { records, count } = closedRefusals(node.log);
  assert.equal(count, ROUTES.length * tries.length, "every refusal is recorded or counted");
  assert.equal(records.length, 6);
  assert.equal(records.at(-1)?.folded, true);
});

Deno.test("createControlApp() takes the owner's token as a bearer token or as the p2p_token cookie", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  for (
    const headers of [
      { authorization: `Bearer ${OWNER_TOKEN}` } as Record<string, string>,
      { authorization: `bearer  ${OWNER_TOKEN}` },
      { cookie: `theme=dark; p2p_token=${OWNER_TOKEN}; x=1` },
    ]
  ) {
    const res = await app.request("/_p2p/status", { headers });
    assert.equal(res.status, 200, JSON.stringify(headers));
    assert.equal((await res.json()).name, "alice");
  }
});

Deno.test("createControlApp() refuses requests from pages of other origins with 403, even with the token", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  const own = { host: "127.0.0.1:5805", authorization: `Bearer ${OWNER_TOKEN}` };
  const cases: [Record<string, string>, number][] = [
    [{ origin: "http://127.0.0.3:8000" }, 403],
    // Another port of the same host is another origin (and the same site).
    [{ origin: "http://127.0.0.1:5810" }, 403],
    [{ origin: "null" }, 403],
    [{ origin: "https://127.0.0.1:5805" }, 403],
    [{ "sec-fetch-site": "cross-site" }, 403],
    [{ "sec-fetch-site": "same-site" }, 403],
    [{ origin: "http://127.0.0.1:5805", "sec-fetch-site": "same-origin" }, 200],
    [{ "sec-fetch-site": "none" }, 200],
    [{}, 200],
  ];
  for (const [headers, status] of cases) {
    // A text/plain POST is what a cross-site form or fetch sends without preflight.
    const res = await app.request("/_p2p/discover", {
      method: "POST",
      headers: { ...own, ...headers, "content-type": "text/plain" },
      body: JSON.stringify({ range: "127.0.0.250/32" }),
    });
    assert.equal(res.status, status, JSON.stringify(headers));
    if (status === 403) assert.equal((await refusal(res))[1], "forbidden_origin");
    else await res.body?.cancel();
  }
  // Relayed by the main server: the origin is the one the client reached.
  const relayed = await app.request("/_p2p/status", {
    headers: {
      host: "127.0.0.1:40000",
      "x-forwarded-host": "127.0.0.2:5805",
      "x-forwarded-proto": "http",
      origin: "http://127.0.0.2:5805",
      authorization: `Bearer ${OWNER_TOKEN}`,
    },
  });
  assert.equal(relayed.status, 200);
  await relayed.body?.cancel();
  const { records, count } = closedRefusals(node.log);
  assert.equal(count, 6);
  assert.ok(records.every((r) => r.code === "forbidden_origin"));
});

Deno.test("GET /_p2p/login?once= sets an HttpOnly SameSite=Strict cookie once; the code expires", async () => {
  await using node = await fakeNode();
  let now = 1_000_000;
  const auth = new ControlAuth(OWNER_TOKEN, { now: () => now });
  const app = createControlApp(node, { auth });
  const code = auth.loginCode();
  const first = await app.request(`/_p2p/login?once=${code}`, {
    headers: { host: "127.0.0.1:5805" },
  });
  assert.equal(first.status, 303);
  assert.equal(first.headers.get("location"), "/");
  const cookie = first.headers.get("set-cookie") ?? "";
  assert.equal(cookieValue(cookie, "p2p_token"), OWNER_TOKEN);
  assert.match(cookie, /; HttpOnly/);
  assert.match(cookie, /; SameSite=Strict/);
  assert.match(cookie, /; Path=\//);
  assert.doesNotMatch(cookie, /Secure/);
  // The cookie opens the API.
  const status = await app.request("/_p2p/status", {
    headers: { cookie: `p2p_token=${OWNER_TOKEN}` },
  });
  assert.equal(status.status, 200);
  await status.body?.cancel();
  // Once only.
  const again = await app.request(`/_p2p/login?once=${code}`);
  assert.deepEqual(await refusal(again), [401, "login_expired"]);
  assert.equal(again.headers.get("set-cookie"), null);
  // A code past its time is refused; over HTTPS the cookie is Secure.
  const late = auth.loginCode();
  now += LOGIN_CODE_TTL_MS - 1;
  const fresh = auth.loginCode();
  now += 1;
  assert.deepEqual(await refusal(await app.request(`/_p2p/login?once=${late}`)), [
    401,
    "login_expired",
  ]);
  const secure = await app.request(`/_p2p/login?once=${fresh}`, {
    headers: { "x-forwarded-proto": "https", "x-forwarded-host": "peer.local:5805" },
  });
  assert.equal(secure.status, 303);
  assert.match(secure.headers.get("set-cookie") ?? "", /; Secure$/);
  // From another origin, even a good code is refused (no login CSRF).
  const csrf = await app.request(`/_p2p/login?once=${auth.loginCode()}`, {
    headers: { host: "127.0.0.1:5805", "sec-fetch-site": "cross-site" },
  });
  assert.deepEqual(await refusal(csrf), [403, "forbidden_origin"]);
});

Deno.test("POST /_p2p/login takes the token itself (the web app's form); logout clears the cookie", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  const post = (body: string, headers: Record<string, string> = {}) =>
    app.request("/_p2p/login", {
      method: "POST",
      headers: { host: "127.0.0.1:5805", "content-type": "application/json", ...headers },
      body,
    });
  assert.deepEqual(await refusal(await post(JSON.stringify({ token: randomToken() }))), [
    401,
    "wrong_token",
  ]);
  assert.deepEqual(await refusal(await post("not json")), [400, "invalid_json"]);
  assert.deepEqual(await refusal(await post(JSON.stringify({ token: "x".repeat(2000) }))), [
    413,
    "too_large",
  ]);
  const ok = await post(JSON.stringify({ token: ` ${OWNER_TOKEN}\n` }));
  assert.equal(ok.status, 204);
  assert.equal(cookieValue(ok.headers.get("set-cookie"), "p2p_token"), OWNER_TOKEN);
  const cross = await post(JSON.stringify({ token: OWNER_TOKEN }), {
    origin: "http://127.0.0.3:8000",
  });
  assert.deepEqual(await refusal(cross), [403, "forbidden_origin"]);
  const out = await app.request("/_p2p/logout", {
    method: "POST",
    headers: { cookie: `p2p_token=${OWNER_TOKEN}` },
  });
  assert.equal(out.status, 204);
  assert.match(out.headers.get("set-cookie") ?? "", /^p2p_token=; Path=\/; Max-Age=0;/);
});

Deno.test("POST /_p2p/login-links makes a new one-time link for the owner", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  const res = await app.request("/_p2p/login-links", {
    method: "POST",
    headers: { authorization: `Bearer ${OWNER_TOKEN}` },
  });
  assert.equal(res.status, 200);
  const link = LoginLinkAnswer.parse(await res.json());
  assert.ok(link.expiresAt > Date.now() + LOGIN_CODE_TTL_MS - 60_000);
  const used = await app.request(link.path);
  assert.equal(used.status, 303);
  assert.equal(cookieValue(used.headers.get("set-cookie"), "p2p_token"), OWNER_TOKEN);
  assert.deepEqual(await refusal(await app.request(link.path)), [401, "login_expired"]);
});

Deno.test("ControlAuth keeps at most 16 login codes, the oldest going first", () => {
  const auth = new ControlAuth(OWNER_TOKEN);
  const codes = Array.from({ length: 17 }, () => auth.loginCode());
  assert.equal(auth.redeem(codes[0]), undefined);
  assert.equal(auth.redeem(codes[1]), OWNER_TOKEN);
  assert.equal(auth.redeem(codes[16]), OWNER_TOKEN);
  assert.equal(auth.redeem("x"), undefined);
  assert.throws(() => new ControlAuth("short"), TypeError);
});

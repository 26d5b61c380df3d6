import assert from "node:assert/strict";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { zValidator } from "@hono/zod-validator";
import {
  errorHandler,
  jsonBody,
  limitBody,
  listingHook,
  mapError,
  notFoundHandler,
  param,
  query,
  validate,
} from "./http_api.ts";
import { InvalidInputError, NotFoundError, P2pError } from "../proto/errors.ts";

function app() {
  const seen: string[] = [];
  const a = new Hono();
  a.get("/item/:id", (c) => c.json({ id: param(c, "id", z.string().regex(/^\d+$/), "Item id") }));
  a.get("/q", (c) => c.json(query(c, z.object({ n: z.coerce.number().int().max(5) }))));
  a.get("/missing", () => {
    throw new NotFoundError("unknown_item", "No item 'x'");
  });
  a.get("/boom", () => {
    throw new Error("disk on fire");
  });
  a.post("/small", bodyLimit({ maxSize: 4 }), async (c) => c.text(await c.req.text()));
  a.notFound(notFoundHandler());
  a.onError(errorHandler((err, m) => seen.push(`${m.status} ${m.expected} ${err.message}`)));
  return { a, seen };
}

Deno.test("param() answers 400 invalid_id naming the parameter and its value", async () => {
  const { a } = app();
  const res = await a.request("/item/abc");
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, "invalid_id");
  assert.match(body.error.message, /^Item id 'abc' /);
  assert.deepEqual(await (await a.request("/item/42")).json(), { id: "42" });
});

Deno.test("query() answers 400 invalid_query with the zod issues", async () => {
  const { a } = app();
  const res = await a.request("/q?n=9");
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, "invalid_query");
  assert.equal(body.error.issues[0].path, "n");
});

Deno.test("errorHandler() maps NotFoundError, HTTPException and unknown errors", async () => {
  const { a, seen } = app();
  const nf = await a.request("/missing");
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.code, "unknown_item");
  const big = await a.request("/small", { method: "POST", body: "too long" });
  assert.equal(big.status, 413);
  assert.deepEqual(await big.json(), {
    error: { code: "too_large", message: "Request body is too large" },
  });
  const boom = await a.request("/boom");
  assert.equal(boom.status, 503);
  assert.deepEqual(await boom.json(), { error: { code: "unavailable", message: "disk on fire" } });
  const route = await a.request("/nowhere");
  assert.equal(route.status, 404);
  assert.equal((await route.json()).error.code, "not_found");
  assert.deepEqual(seen, [
    "404 true No item 'x'",
    "413 true ",
    "503 false disk on fire",
  ]);
});

Deno.test("mapError() keeps a P2pError's code with the fallback status when it has none", () => {
  const m = mapError(new P2pError("busy", "Try later"), { status: 502, code: "bad_gateway" });
  assert.equal(m.status, 502);
  assert.equal(m.body.error.code, "busy");
  const cause = new HTTPException(413, {
    message: "big",
    cause: new P2pError("payload_too_large", "big"),
  });
  assert.equal(mapError(cause).body.error.code, "payload_too_large");
});

Deno.test("validate() throws InvalidInputError with issues and a one-line message", () => {
  assert.throws(
    () =>
      validate(z.object({ port: z.number() }), { port: "x" }, "invalid_body", "Cannot register: "),
    (err) =>
      err instanceof InvalidInputError && err.status === 400 && err.code === "invalid_body" &&
      /^Cannot register: port: /.test(err.message) && err.issues?.[0].path === "port",
  );
});

Deno.test("limitBody() throws the given error for a body over the limit, declared or streamed", async () => {
  const a = new Hono();
  a.post(
    "/",
    limitBody(4, () => new P2pError("payload_too_large", "Over 4 bytes", { status: 413 })),
    async (c) => c.text(await c.req.text()),
  );
  a.onError(errorHandler());
  const declared = await a.request("/", {
    method: "POST",
    body: "12345",
    headers: { "content-length": "5" },
  });
  assert.equal(declared.status, 413);
  assert.equal((await declared.json()).error.code, "payload_too_large");
  const streamed = await a.request("/", {
    method: "POST",
    body: ReadableStream.from([new Uint8Array(3), new Uint8Array(3)]),
  });
  assert.equal(streamed.status, 413);
  await streamed.body?.cancel();
  assert.equal(await (await a.request("/", { method: "POST", body: "1234" })).text(), "1234");
});

Deno.test("limitBody() and jsonBody() answer a body that breaks off with 400 incomplete_body", async () => {
  const a = new Hono();
  a.post(
    "/",
    limitBody(100, () => new P2pError("too_large", "Too large", { status: 413 })),
    (c) => c.text("read"),
  );
  a.post("/json", async (c) => c.json(await jsonBody(c, z.object({ n: z.number() }))));
  a.onError(errorHandler());
  const broken = () =>
    new ReadableStream<Uint8Array>({
      pull(ctrl) {
        ctrl.error(new TypeError("connection reset"));
      },
    });
  for (const path of ["/", "/json"]) {
    const res = await a.request(path, { method: "POST", body: broken() });
    assert.equal(res.status, 400, path);
    const body = await res.json();
    assert.equal(body.error.code, "incomplete_body", path);
    assert.match(body.error.message, /connection reset/, path);
  }
});

Deno.test("jsonBody() tells bad JSON from a value that fails its schema, naming every field", async () => {
  const a = new Hono();
  a.post("/", async (c) => c.json(await jsonBody(c, z.object({ n: z.number(), s: z.string() }))));
  a.onError(errorHandler());
  const bad = await a.request("/", { method: "POST", body: "{nope" });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.code, "bad_json");
  const wrong = await (await a.request("/", { method: "POST", body: '{"n":"1"}' })).json();
  assert.equal(wrong.error.code, "invalid_body");
  assert.match(wrong.error.message, /^Request body is invalid: 'n' .*; 's' /);
  assert.deepEqual(wrong.error.issues.map((i: { path: string }) => i.path), ["n", "s"]);
  assert.deepEqual(
    await (await a.request("/", { method: "POST", body: '{"n":1,"s":"x"}' })).json(),
    { n: 1, s: "x" },
  );
});

Deno.test("listingHook() makes @hono/zod-validator throw InvalidInputError naming every issue", async () => {
  const a = new Hono();
  a.get(
    "/",
    zValidator(
      "query",
      z.object({ limit: z.coerce.number().int().min(1) }),
      listingHook("invalid_query", "Query is invalid: "),
    ),
    (c) => c.json(c.req.valid("query")),
  );
  a.onError(errorHandler());
  const res = await a.request("/?limit=0");
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, "invalid_query");
  assert.match(body.error.message, /^Query is invalid: 'limit' /);
  assert.deepEqual(await (await a.request("/?limit=3")).json(), { limit: 3 });
});

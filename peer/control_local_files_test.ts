import assert from "node:assert/strict";
import { createControlApp } from "./control.ts";
import { COMPLETE, fakeNode, OWNER_TOKEN, ownerAuth } from "./_control_fake.ts";
import { ErrorBody } from "../proto/error_body.ts";

const ROUTES = [
  [`/_p2p/downloads/${COMPLETE}/to-file`, { path: "/tmp/p2p-never-written.bin" }],
  ["/_p2p/payloads/from-file", { path: "/etc/hostname" }],
] as const;

Deno.test("The path routes refuse a client that is not on the peer's machine with 403 not_local, and one without the token with 401", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  for (const [path, body] of ROUTES) {
    // As the peer's relay forwards a LAN client: its address last in X-Forwarded-For.
    for (const from of ["198.51.100.7", "127.0.0.1, 198.51.100.7", "_p2p-peer"]) {
      const res = await app.request(path, {
        method: "POST",
        headers: { authorization: `Bearer ${OWNER_TOKEN}`, "x-forwarded-for": from },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 403, `${path} from ${from}`);
      assert.equal(ErrorBody.parse(await res.json()).error.code, "not_local");
    }
    const anon = await app.request(path, {
      method: "POST",
      headers: { "x-forwarded-for": "127.0.0.1" },
      body: JSON.stringify(body),
    });
    assert.equal(anon.status, 401, path);
    await anon.body?.cancel();
  }
  await assert.rejects(Deno.lstat("/tmp/p2p-never-written.bin"), Deno.errors.NotFound);
});

Deno.test("POST /_p2p/payloads/from-file refuses a relative path, a folder and a missing file with 400", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  const dir = await Deno.makeTempDir();
  try {
    for (const path of ["relative.bin", dir, `${dir}/missing.bin`]) {
      const res = await app.request("/_p2p/payloads/from-file", {
        method: "POST",
        headers: { authorization: `Bearer ${OWNER_TOKEN}`, "x-forwarded-for": "127.0.0.1" },
        body: JSON.stringify({ path }),
      });
      assert.equal(res.status, 400, path);
      const { error } = ErrorBody.parse(await res.json());
      assert.match(error.code, /^(invalid_body|bad_path)$/, path);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

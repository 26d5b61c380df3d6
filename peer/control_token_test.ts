import assert from "node:assert/strict";
import { isTokenShaped, loadControlToken, TOKEN_FILE } from "./control_token.ts";

Deno.test("loadControlToken() makes a private token at first start and keeps it across restarts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await loadControlToken(dir);
    assert.ok(isTokenShaped(first.token), first.token);
    assert.equal(first.path, `${dir}/${TOKEN_FILE}`);
    assert.equal((await Deno.stat(first.path)).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(first.path), `${first.token}\n`);
    assert.equal((await loadControlToken(dir)).token, first.token);
    // A file others may read is made private again.
    await Deno.chmod(first.path, 0o644);
    assert.equal((await loadControlToken(dir)).token, first.token);
    assert.equal((await Deno.stat(first.path)).mode! & 0o777, 0o600);
    // Another data directory, another token.
    const other = await Deno.makeTempDir({ dir });
    assert.notEqual((await loadControlToken(other)).token, first.token);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadControlToken() refuses a token file that holds something else", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/${TOKEN_FILE}`, "hello\n");
    await assert.rejects(loadControlToken(dir), (err: Error) => {
      assert.ok(err instanceof TypeError);
      assert.match(err.message, /holds no p2p token; remove it/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

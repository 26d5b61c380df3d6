import assert from "node:assert/strict";
import { parseNetworkKey } from "../proto/network_key.ts";
import { readNetworkKeyFile } from "../lib/network_key_file.ts";
import { keygen } from "./keygen.ts";

Deno.test("keygen() prints a key that parses, and says where it goes on stderr", async () => {
  const out: string[] = [];
  const err: string[] = [];
  await keygen({}, (l) => out.push(l), (l) => err.push(l));
  assert.equal(out.length, 1);
  assert.equal(parseNetworkKey(out[0]).byteLength, 32);
  assert.match(err.join("\n"), /P2P_NETWORK_KEY/);
  assert.ok(!err.join("\n").includes(out[0]));
});

Deno.test("keygen({ output }) writes a private file and keeps it unless forced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/net.key`;
    const out: string[] = [];
    await keygen({ output: path }, (l) => out.push(l));
    const key = await readNetworkKeyFile(path);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.ok(!out.join("\n").includes("p2pkey1-"), "the key itself is not printed");
    await assert.rejects(keygen({ output: path }, () => {}), /exists already/);
    assert.deepEqual(await readNetworkKeyFile(path), key);
    await keygen({ output: path, force: true }, () => {});
    assert.notDeepEqual(await readNetworkKeyFile(path), key);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

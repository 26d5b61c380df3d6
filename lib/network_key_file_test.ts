import assert from "node:assert/strict";
import { InvalidInputError } from "../proto/errors.ts";
import { formatNetworkKey, newNetworkKey } from "../proto/network_key.ts";
import {
  NETWORK_KEY_ENV,
  NetworkKeyFileError,
  readNetworkKeyFile,
  resolveNetworkKey,
  writeNetworkKeyFile,
} from "./network_key_file.ts";

Deno.test("writeNetworkKeyFile() writes mode 600 and readNetworkKeyFile() reads it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = newNetworkKey();
    const path = `${dir}/net.key`;
    await writeNetworkKeyFile(path, key);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual(await readNetworkKeyFile(path), key);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeNetworkKeyFile() refuses to replace a file unless forced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/net.key`;
    const first = newNetworkKey();
    await writeNetworkKeyFile(path, first);
    await assert.rejects(writeNetworkKeyFile(path, newNetworkKey()), NetworkKeyFileError);
    assert.deepEqual(await readNetworkKeyFile(path), first);
    const second = newNetworkKey();
    await writeNetworkKeyFile(path, second, { force: true });
    assert.deepEqual(await readNetworkKeyFile(path), second);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readNetworkKeyFile() names the file when it is missing, garbled or too open", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(readNetworkKeyFile(`${dir}/none`), /Cannot read network key file/);
    await Deno.writeTextFile(`${dir}/bad`, "not a key");
    await assert.rejects(readNetworkKeyFile(`${dir}/bad`), (err) => {
      assert.ok(err instanceof InvalidInputError);
      assert.match((err as Error).message, /bad'.*starts with 'p2pkey1-'/);
      return true;
    });
    await Deno.writeTextFile(`${dir}/open`, formatNetworkKey(newNetworkKey()), { mode: 0o644 });
    await Deno.chmod(`${dir}/open`, 0o644);
    const warnings: string[] = [];
    await readNetworkKeyFile(`${dir}/open`, (m) => warnings.push(m));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /chmod 600/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveNetworkKey() takes the file first, then the environment, else none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fileKey = newNetworkKey();
    const envKey = newNetworkKey();
    await writeNetworkKeyFile(`${dir}/k`, fileKey);
    const env = (n: string) => n === NETWORK_KEY_ENV ? formatNetworkKey(envKey) : undefined;
    assert.deepEqual(await resolveNetworkKey(`${dir}/k`, env), { key: fileKey, source: "file" });
    assert.deepEqual(await resolveNetworkKey(undefined, env), { key: envKey, source: "env" });
    assert.deepEqual(await resolveNetworkKey(undefined, () => undefined), { source: "none" });
    assert.deepEqual(await resolveNetworkKey(undefined, () => "  "), { source: "none" });
    await assert.rejects(resolveNetworkKey(undefined, () => "garbage"), /P2P_NETWORK_KEY: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

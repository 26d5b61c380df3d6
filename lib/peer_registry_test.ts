import assert from "node:assert/strict";
import {
  findPeer,
  liveEntries,
  originOf,
  registerPeer,
  type RegistryEntry,
} from "./peer_registry.ts";

const entry = (over: Partial<RegistryEntry>): RegistryEntry => ({
  pid: Deno.pid,
  peerId: "a".repeat(40),
  urls: ["http://127.0.0.1:5805", "http://localhost:5805"],
  tokenFile: "/tmp/a/control.token",
  started: 1,
  ...over,
});

/** A process id that runs no process now: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", ""], stdout: "null" }).spawn();
  await child.status;
  return child.pid;
}

Deno.test("registerPeer() lists a running peer (mode 600, in a mode 700 folder) until it is removed", async () => {
  const home = await Deno.makeTempDir();
  const dir = `${home}/running`;
  try {
    const remove = await registerPeer(dir, entry({}));
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(`${dir}/${"a".repeat(40)}.json`)).mode! & 0o777, 0o600);
    assert.equal(
      (await findPeer(dir, "http://LOCALHOST:5805/"))?.tokenFile,
      "/tmp/a/control.token",
    );
    assert.equal(await findPeer(dir, "http://127.0.0.1:5806"), undefined);
    assert.equal(await findPeer(dir, "not a url"), undefined);
    remove();
    remove();
    assert.deepEqual(await liveEntries(dir), []);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("findPeer() ignores and removes the entries of dead processes, and prefers the newest", async () => {
  const home = await Deno.makeTempDir();
  const dir = `${home}/running`;
  try {
    await registerPeer(dir, entry({ pid: await deadPid(), tokenFile: "/dead" }));
    assert.equal(await findPeer(dir, "http://127.0.0.1:5805"), undefined);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await registerPeer(dir, entry({ peerId: "b".repeat(40), started: 5, tokenFile: "/new" }));
    await registerPeer(dir, entry({ peerId: "c".repeat(40), started: 2, tokenFile: "/old" }));
    await Deno.writeTextFile(`${dir}/junk.json`, "{");
    assert.equal((await findPeer(dir, "http://127.0.0.1:5805"))?.tokenFile, "/new");
    assert.deepEqual(await liveEntries(`${home}/missing`), []);
    assert.equal(originOf("http://127.0.0.1:80/x"), "http://127.0.0.1");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a peer's removal leaves a later start's entry of the same peer in place", async () => {
  const home = await Deno.makeTempDir();
  const dir = `${home}/running`;
  try {
    const removeOld = await registerPeer(dir, entry({ started: 1 }));
    await registerPeer(dir, entry({ started: 2, tokenFile: "/restarted" }));
    removeOld();
    assert.equal((await findPeer(dir, "http://127.0.0.1:5805"))?.tokenFile, "/restarted");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { openPeerData } from "./data_dir.ts";

Deno.test("openPeerData() creates a data directory and opens it again with the same identity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await openPeerData(`${dir}/peer`);
    const peerId = first.identity.peerId;
    await first.table.upsert(
      { peerId: "ab".repeat(20), host: "127.0.0.2", ports: { chunk: 1 } },
      "seed",
    );
    first.log.record("test.note", {});
    first.close();
    first.close();
    const again = await openPeerData(`${dir}/peer`);
    assert.equal(again.identity.peerId, peerId);
    assert.equal(again.table.list().length, 1);
    assert.deepEqual(again.store.list(), []);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { GroupCommit, type GroupWrite } from "./group_commit.ts";

async function tempKv(): Promise<{ kv: Deno.Kv; close(): void } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-group-commit-" });
  const kv = await Deno.openKv(`${dir}/kv`);
  let closed = false;
  return {
    kv,
    close: () => {
      closed = true;
      kv.close();
    },
    async [Symbol.asyncDispose]() {
      if (!closed) kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A write of `value` at `key`, checked against `versionstamp` (null: the key is absent). */
function setWrite(
  key: Deno.KvKey,
  value: string,
  versionstamp: string | null = null,
): GroupWrite<string> {
  return {
    keys: [key],
    checks: 1,
    mutations: 1,
    bytes: 64,
    build: (op) => {
      op.check({ key, versionstamp }).set(key, value);
      return value;
    },
  };
}

Deno.test("GroupCommit carries writes that arrive together in one commit and settles each only once KV has it", async () => {
  await using t = await tempKv();
  const group = new GroupCommit(t.kv, { fullGroup: 100 });
  const seen: (string | null)[] = [];
  const writes = Array.from(
    { length: 20 },
    (_, i) =>
      group.commit(setWrite(["k", i], `v${i}`)).then(async (res) => {
        assert.equal(res.ok, true);
        // Acknowledged: the value is in KV already.
        seen.push((await t.kv.get<string>(["k", i])).value);
        return res;
      }),
  );
  const results = await Promise.all(writes);
  assert.deepEqual(seen.toSorted(), Array.from({ length: 20 }, (_, i) => `v${i}`).toSorted());
  assert.deepEqual(group.stats, { commits: 1, writes: 20 });
  assert.equal(new Set(results.map((r) => r.ok && r.versionstamp)).size, 1);
});

Deno.test("GroupCommit fails only the stale write of a group and commits the others", async () => {
  await using t = await tempKv();
  await t.kv.set(["taken"], "old");
  const group = new GroupCommit(t.kv);
  const [a, stale, b] = await Promise.all([
    group.commit(setWrite(["a"], "a")),
    group.commit(setWrite(["taken"], "new")), // expects the key absent: stale
    group.commit(setWrite(["b"], "b")),
  ]);
  assert.deepEqual([a.ok, stale.ok, b.ok], [true, false, true]);
  const got = await t.kv.getMany<string[]>([["a"], ["taken"], ["b"]]);
  assert.deepEqual(got.map((e) => e.value), ["a", "old", "b"]);
});

Deno.test("GroupCommit puts writes that share a key in separate groups, in order, and keeps within KV's limits", async () => {
  await using t = await tempKv();
  const group = new GroupCommit(t.kv, { maxChecks: 10 });
  const first = group.commit(setWrite(["same"], "1"));
  const second = group.commit({
    ...setWrite(["same"], "2"),
    build: (op) => (op.set(["same"], "2"), "2"),
  });
  const many = Array.from({ length: 25 }, (_, i) => group.commit(setWrite(["m", i], "x")));
  const results = await Promise.all([first, second, ...many]);
  assert.ok(results.every((r) => r.ok));
  assert.equal((await t.kv.get(["same"])).value, "2");
  // 27 writes of one check each, at most 10 checks a commit: at least 3 commits.
  assert.ok(group.stats.commits >= 3, `${group.stats.commits} commits`);
});

Deno.test("GroupCommit rejects every write of a commit that throws and acknowledges none", async () => {
  await using t = await tempKv();
  const group = new GroupCommit(t.kv);
  const writes = [group.commit(setWrite(["x"], "1")), group.commit(setWrite(["y"], "2"))];
  t.close();
  const settled = await Promise.allSettled(writes);
  assert.deepEqual(settled.map((s) => s.status), ["rejected", "rejected"]);
});

Deno.test("GroupCommit sends a full group at once, without waiting out its window", async () => {
  await using t = await tempKv();
  // A window no test would wait for: only a full group can go.
  const group = new GroupCommit(t.kv, { windowMs: 3_600_000, fullGroup: 4 });
  const results = await Promise.all(
    Array.from({ length: 4 }, (_, i) => group.commit(setWrite(["f", i], "x"))),
  );
  assert.ok(results.every((r) => r.ok));
  assert.deepEqual(group.stats, { commits: 1, writes: 4 });
});

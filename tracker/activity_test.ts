import assert from "node:assert/strict";
import { testTracker } from "./_test_setup.ts";

/** The records of the tracker's JSON-lines log, once it is closed. */
async function fileRecords(dir: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(`${dir}/activity.jsonl`);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

Deno.test("ActivityLog.recordFolded(): 1,000 polls and 100 refusals from one address cost a few records, whose counts add up", async () => {
  const t = await testTracker();
  try {
    for (let i = 0; i < 1000; i++) await (await t.request("/peers")).body?.cancel();
    for (let i = 0; i < 2; i++) await (await t.request("/peers", {}, "127.0.0.8")).body?.cancel();
    for (let i = 0; i < 100; i++) await (await t.request("/no-such-route")).body?.cancel();
    await t.activity.close();
    const records = await fileRecords(t.dir);
    const queries = records.filter((r) => r.type === "query");
    const from9 = queries.filter((r) => r.from === "127.0.0.9");
    assert.equal(from9.length, 6, "five records of their own and one count");
    assert.deepEqual(from9.map((r) => r.folded ? r.count : 1), [1, 1, 1, 1, 1, 995]);
    assert.equal(from9[5].route, "/peers");
    assert.equal(queries.filter((r) => r.from === "127.0.0.8").length, 2, "another address");
    const errors = records.filter((r) => r.type === "error");
    assert.equal(errors.length, 6);
    assert.deepEqual(
      { ...errors[5], id: 0, ts: "", first: "", last: "" },
      {
        id: 0,
        ts: "",
        type: "error",
        from: "127.0.0.9",
        code: "not_found",
        count: 95,
        first: "",
        last: "",
        folded: true,
      },
    );
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

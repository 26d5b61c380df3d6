/**
 * Search on one peer process, through its control API and the CLI: hits with snippets,
 * tags set with `p2p tag`, clear 400s for bad queries, and `p2p search`'s output.
 */
import assert from "node:assert/strict";
import { p2pClient, spawnPeer } from "./_peer_process.ts";
import { SearchAnswer } from "../proto/search.ts";
import { ErrorBody } from "../proto/error_body.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("a peer searches what it holds: control API, tags, bad queries and p2p search", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-search-peer-" });
  try {
    await using peer = await spawnPeer({ dataDir: `${dir}/a`, host: "127.0.0.2", name: "alpha" });
    const node = ["--node", peer.http, "--token", peer.token];
    const put = async (name: string, text: string) => {
      const r = await p2pClient(["put", "-", "--name", name, ...node], enc(text));
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim().split("\n")[0];
    };
    const notes = await put("notes.md", "# Meeting\nThe quarterly budget was approved.");
    await put("page.html", "<html><body><p>Budget <b>draft</b> for 2027</p></body></html>");
    await put("photo.png", "\x89PNG\r\n\x1a\n\0\0binary");
    const tagged = await p2pClient(["tag", notes.slice(0, 8), "finance", "Q3", ...node]);
    assert.equal(tagged.code, 0, tagged.stderr);
    assert.equal(tagged.stdout.trim(), "tags: finance, q3");

    // put --tag/--type give the payload just put its tags and type.
    const tagged2 = await p2pClient(
      [
        "put",
        "-",
        "--name",
        "plan.txt",
        "--tag",
        "Roadmap",
        "2027",
        "--type",
        "text/markdown",
        ...node,
      ],
      enc("# Plan\nShip search."),
    );
    assert.equal(tagged2.code, 0, tagged2.stderr);
    assert.match(tagged2.stderr, /tags roadmap, 2027; text\/markdown kept for search/);
    // Another payload of the same name: its tags go to it, by id, not to an ambiguous name.
    const sameName = await p2pClient(
      ["put", "-", "--name", "plan.txt", "--tag", "draft", ...node],
      enc("# Plan\nAn older draft."),
    );
    assert.equal(sameName.code, 0, sameName.stderr);
    assert.match(sameName.stderr, /tags draft kept for search/);
    const badTag = await p2pClient(
      ["put", "-", "--name", "x.txt", "--tag", "a,b", ...node],
      enc("x"),
    );
    assert.notEqual(badTag.code, 0);
    assert.match(badTag.stderr, /Tag 'a,b' is not valid/);
    const noName = await p2pClient(["put", "-", "--tag", "x", ...node], enc("x"));
    assert.match(noName.stderr, /need --name when reading standard input/);

    const ask = async (q: string, limit?: string) => {
      const params = new URLSearchParams({ q, ...(limit ? { limit } : {}) });
      const res = await fetch(`${peer.http}/_p2p/search?${params}`, { headers: peer.auth });
      return { status: res.status, body: await res.json() };
    };
    const names = async (q: string) => {
      const { status, body } = await ask(q);
      assert.equal(status, 200, JSON.stringify(body));
      const answer = SearchAnswer.parse(body);
      assert.equal(answer.asked, 0);
      assert.deepEqual(answer.missing, []);
      return answer.hits.map((h) => h.name).sort();
    };
    assert.deepEqual(await names("budget"), ["notes.md", "page.html"]);
    assert.deepEqual(await names("budget -draft"), ["notes.md"]);
    assert.deepEqual(await names("tag:finance"), ["notes.md"]);
    assert.deepEqual(await names("tag:roadmap type:text/markdown"), ["plan.txt"]);
    assert.deepEqual(await names("type:image"), ["photo.png"]);
    assert.deepEqual(await names('"budget was"'), ["notes.md"]);
    const one = SearchAnswer.parse((await ask("approved")).body).hits[0];
    assert.equal(one.payloadId, notes);
    assert.deepEqual(one.holders.map((h) => h.name), ["alpha"]);
    assert.deepEqual(one.snippet.filter((p) => p.mark).map((p) => p.text), ["approved"]);

    const bad: [string, string | undefined, string][] = [
      ["", undefined, "empty_query"],
      ["x".repeat(1025), undefined, "query_too_long"],
      ['"budget', undefined, "unbalanced_quotes"],
      ["-budget", undefined, "only_exclusions"],
      ["budget", "0", "invalid_query"],
      ["budget", "many", "invalid_query"],
    ];
    for (const [q, limit, code] of bad) {
      const { status, body } = await ask(q, limit);
      assert.equal(status, 400, q);
      assert.equal(ErrorBody.parse(body).error.code, code, q);
    }
    const unauthorized = await fetch(`${peer.http}/_p2p/search?q=budget`);
    assert.equal(unauthorized.status, 401);
    await unauthorized.body?.cancel();

    const cli = await p2pClient(["search", "approved", ...node]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /notes\.md {2}text\/markdown .*held by alpha\n {4}.*\[approved\]/);
    const json = await p2pClient(["search", "budget", "--json", "--limit", "1", ...node]);
    assert.equal(SearchAnswer.parse(JSON.parse(json.stdout)).hits.length, 1);
    const wrong = await p2pClient(["search", '"open', ...node]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /phrase that is never closed/);
    assert.equal(wrong.stderr.trim().split("\n").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

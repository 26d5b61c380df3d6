import assert from "node:assert/strict";
import { InvalidArgumentError } from "@commander-js/extra-typings";
import { peerSearchBackend, searchBackendOption, searchUrlOption } from "./search_options.ts";
import { P2pError } from "../proto/errors.ts";
import { p2pClient } from "../tests/_peer_process.ts";

Deno.test("--search-backend takes embedded or elasticsearch and refuses other names", () => {
  const parse = (v: string) => searchBackendOption().parseArg!(v, undefined);
  assert.equal(parse("embedded"), "embedded");
  assert.equal(parse("Elasticsearch"), "elasticsearch");
  assert.throws(() => parse("solr"), (e: Error) => {
    assert.ok(e instanceof InvalidArgumentError);
    assert.equal(e.message, "Search backend 'solr' is not known: use embedded or elasticsearch");
    return true;
  });
});

Deno.test("--search-url takes an http(s) URL and refuses anything else in one line", () => {
  const parse = (v: string) => searchUrlOption().parseArg!(v, undefined);
  assert.equal(parse("http://198.51.100.7:9200/"), "http://198.51.100.7:9200");
  assert.equal(parse("https://198.51.100.7/es"), "https://198.51.100.7/es");
  for (
    const [bad, why] of [
      ["nope", "is not a URL"],
      ["ftp://198.51.100.7", "must be http:// or https://"],
      ["http://198.51.100.7:9200/?pretty", "must have no query or fragment"],
    ]
  ) {
    assert.throws(() => parse(bad), (e: Error) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.ok(e.message.includes(why) && !e.message.includes("\n"), e.message);
      return true;
    });
  }
});

Deno.test("peerSearchBackend() pairs the two flags: elasticsearch needs a URL, embedded takes none", () => {
  assert.deepEqual(peerSearchBackend(undefined, undefined), { kind: "embedded" });
  assert.deepEqual(peerSearchBackend("embedded", undefined), { kind: "embedded" });
  assert.deepEqual(peerSearchBackend("elasticsearch", "http://198.51.100.7:9200"), {
    kind: "elasticsearch",
    url: "http://198.51.100.7:9200",
  });
  const usage = (msg: string) => (e: Error) =>
    e instanceof P2pError && e.code === "usage" && e.message === msg;
  assert.throws(
    () => peerSearchBackend("elasticsearch", undefined),
    usage("--search-backend elasticsearch needs --search-url URL"),
  );
  assert.throws(
    () => peerSearchBackend(undefined, "http://198.51.100.7:9200"),
    usage("--search-url is for --search-backend elasticsearch; the embedded index needs none"),
  );
});

Deno.test("p2p peer documents the search flags and refuses bad ones in one line, starting nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-search-flags-" });
  try {
    // Were the check to fail, the peer would start on loopback with ports the OS picks.
    const where = `--host 127.0.0.1 --port 0 --http-port 0 --pingback-port 0 --app-port 0`;
    const run = (...flags: string[]) =>
      p2pClient(
        ["peer", ...where.split(" "), "--data-dir", `${dir}/peer`, ...flags],
        undefined,
        30_000,
        undefined,
        { P2P_HOME: dir },
      );
    const badName = await run("--search-backend", "solr");
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /^p2p: .*Search backend 'solr' is not known.*\n$/);
    const noUrl = await run("--search-backend", "elasticsearch");
    assert.equal(noUrl.code, 1);
    assert.equal(noUrl.stderr, "p2p: --search-backend elasticsearch needs --search-url URL\n");
    const help = await run("--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--search-backend <name>[\s\S]*--search-url <url>/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

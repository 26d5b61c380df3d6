import assert from "node:assert/strict";

const SCRIPT = new URL("./install-tools.sh", import.meta.url).pathname;

Deno.test("install-tools.sh, not root, says one line per missing tool and exits 0", async () => {
  // A PATH with nothing but an `id` that answers a normal user's uid: no tool, no apt-get.
  const bin = await Deno.makeTempDir({ prefix: "p2p-bench-tools-" });
  try {
    await Deno.writeTextFile(`${bin}/id`, "#!/bin/sh\necho 1000\n", { mode: 0o755 });
    const out = await new Deno.Command("/bin/sh", {
      args: [SCRIPT],
      env: { PATH: bin },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0);
    assert.equal(new TextDecoder().decode(out.stderr), "");
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    const tools = ["aria2c", "opentracker", "nginx", "wrk", "mktorrent", "curl"];
    assert.equal(lines.length, tools.length);
    for (const tool of tools) {
      // nginx may be installed in /usr/sbin, which is not on this PATH: a line of its own.
      const line = lines.find((l) => l.startsWith(`bench: ${tool} is `));
      assert.match(
        line ?? "",
        /is missing \(apt-get install [a-z0-9]+\)|is in \/usr\/sbin, not on PATH/,
      );
    }
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
});

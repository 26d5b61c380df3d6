/**
 * Tests of the virtual-LAN helper in `_netns.ts`: real network namespaces, a real
 * bridge and real TCP between Deno processes inside them. Every packet stays inside
 * the namespaces these tests build. Ignored, with the reason printed, where namespaces
 * cannot be made (not root, no `ip` or `arp`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createLan, type Lan, listNetns, netnsUnavailable } from "./_netns.ts";

const unavailable = await netnsUnavailable();
if (unavailable !== undefined) console.log(`netns tests skipped: ${unavailable}`);
const ignore = unavailable !== undefined;

const CHILD_ENV = { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

/** A TCP server for `deno eval`: prints its port, then `{from, got}` of one connection. */
function serverScript(hostname: string): string {
  return `
const listener = Deno.listen({ hostname: ${JSON.stringify(hostname)}, port: 0 });
console.log(listener.addr.port);
const conn = await listener.accept();
listener.close();
const buf = new Uint8Array(256);
let got = "";
while (!got.endsWith("\\n")) {
  const n = await conn.read(buf);
  if (n === null) break;
  got += new TextDecoder().decode(buf.subarray(0, n));
}
got = got.trim();
console.log(JSON.stringify({ from: conn.remoteAddr.hostname, got }));
await conn.write(new TextEncoder().encode("pong to " + got + "\\n"));
conn.close();
`;
}

/** A TCP client for `deno eval`: sends one line and prints the answer, read to the end. */
function clientScript(hostname: string, port: number): string {
  return `
const conn = await Deno.connect({ hostname: ${JSON.stringify(hostname)}, port: ${port} });
await conn.write(new TextEncoder().encode("ping from h1\\n"));
const buf = new Uint8Array(256);
let answer = "";
for (let n; (n = await conn.read(buf)) !== null;) {
  answer += new TextDecoder().decode(buf.subarray(0, n));
}
conn.close();
console.log(answer.trim());
`;
}

/** Reads a child's stdout line by line, and its stderr to the end in the background. */
function lines(child: Deno.ChildProcess) {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let stderr = "";
  const stderrDone = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  return {
    async next(): Promise<string> {
      let nl;
      while ((nl = buffered.indexOf("\n")) < 0) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`The child closed its stdout; its stderr: ${stderr}`);
        buffered += value;
      }
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      return line;
    },
    /** Reads both pipes to the end. */
    async close(): Promise<void> {
      while (!(await reader.read()).done);
      await stderrDone;
    },
  };
}

/** The namespaces of `lan` that `ip netns list` still shows. */
async function leftovers(lan: Lan): Promise<string[]> {
  const names = [lan.switchName, ...lan.hosts.map((h) => h.name)];
  return (await listNetns()).filter((name) => names.includes(name)).sort();
}

Deno.test({
  name: "createLan() builds a bridged LAN where a host reaches another over TCP",
  ignore,
  async fn() {
    await using lan = await createLan({ hosts: 3 });
    assert.equal(lan.cidr, "10.77.0.0/28");
    assert.deepEqual(lan.hosts.map((h) => h.ip), ["10.77.0.1", "10.77.0.2", "10.77.0.3"]);
    assert.deepEqual(
      await leftovers(lan),
      [lan.switchName, ...lan.hosts.map((h) => h.name)].sort(),
    );
    const [h1, , h3] = lan.hosts;

    const server = lan.spawn(h3, [Deno.execPath(), "eval", serverScript(h3.ip)], {
      env: CHILD_ENV,
    });
    const out = lines(server);
    const port = Number(await out.next());
    assert.ok(port > 0, `server port '${port}'`);

    const client = await lan.exec(h1, [Deno.execPath(), "eval", clientScript(h3.ip, port)], {
      env: CHILD_ENV,
    });
    assert.equal(client.stderr, "");
    assert.ok(client.success, `client exit ${client.code}`);
    assert.equal(client.stdout, "pong to ping from h1\n");
    assert.deepEqual(JSON.parse(await out.next()), { from: h1.ip, got: "ping from h1" });
    await out.close();
    assert.ok((await server.status).success);
    // The exchange went over the bridge, so host 1 learned host 3's MAC address.
    const arp = await lan.exec(h1, ["arp", "-n", h3.ip]);
    assert.match(arp.stdout, new RegExp(`^${h3.ip.replaceAll(".", "\\.")} +ether `, "m"));
  },
});

Deno.test({
  name: "createLan() gives a host only its LAN: eth0 and lo, one link route, no default",
  ignore,
  async fn() {
    await using lan = await createLan({ hosts: 2, subnet: "10.77.0.16/28" });
    const [h1] = lan.hosts;
    assert.equal(h1.ip, "10.77.0.17");

    const route4 = await lan.exec(h1, ["ip", "-4", "route", "show", "table", "all"]);
    assert.ok(route4.success, route4.stderr);
    const routes = route4.stdout.trim().split("\n");
    assert.ok(!route4.stdout.includes("default"), route4.stdout);
    // Besides the kernel's local and broadcast routes (table local), only the /28.
    assert.deepEqual(routes.filter((r) => !r.includes("table local")), [
      "10.77.0.16/28 dev eth0 proto kernel scope link src 10.77.0.17 ",
    ]);
    const cat = await lan.exec(h1, ["cat"], { stdin: "through stdin" });
    assert.equal(cat.stdout, "through stdin");
    await assert.rejects(
      lan.exec(h1, ["sleep", "10"], { signal: AbortSignal.timeout(50) }),
      /^Error: Command 'ip netns exec \S+-h1 sleep 10' was stopped/,
    );

    const route6 = await lan.exec(h1, ["ip", "-6", "route", "show", "table", "all"]);
    assert.ok(!route6.stdout.includes("default"), route6.stdout);

    const links = await lan.exec(h1, ["ip", "-o", "link", "show"]);
    assert.deepEqual(
      links.stdout.trim().split("\n").map((l) => l.split(": ")[1].split("@")[0]),
      ["lo", "eth0"],
    );
    // The bridge has no address: the switch is no host and no router.
    const bridge = await lan.exec(h1, ["ip", "-n", lan.switchName, "-4", "addr", "show", "br0"]);
    assert.ok(bridge.success, bridge.stderr);
    assert.ok(!bridge.stdout.includes("inet"), bridge.stdout);
  },
});

Deno.test({
  name: "Lan.destroy() stops its processes and deletes its namespaces, once",
  ignore,
  async fn() {
    const lan = await createLan({ hosts: 2 });
    const sleeper = lan.spawn(lan.hosts[1], ["sleep", "60"]);
    await lan.destroy();
    assert.equal((await sleeper.status).signal, "SIGTERM");
    assert.deepEqual(await leftovers(lan), []);
    await lan.destroy();
    await lan[Symbol.asyncDispose]();
    assert.throws(() => lan.spawn(lan.hosts[0], ["true"]), /its LAN is destroyed/);
  },
});

Deno.test({
  name: "createLan() tears down under 'await using' when the test body throws",
  ignore,
  async fn() {
    let built: Lan | undefined;
    let sleeper: Deno.ChildProcess | undefined;
    await assert.rejects(async () => {
      await using lan = await createLan({ hosts: 2 });
      built = lan;
      sleeper = lan.spawn(lan.hosts[0], ["sleep", "60"]);
      throw new Error("boom");
    }, /boom/);
    assert.ok(built !== undefined && sleeper !== undefined);
    assert.equal((await sleeper.status).signal, "SIGTERM");
    assert.deepEqual(await leftovers(built), []);
  },
});

Deno.test({
  name: "createLan() deletes namespaces, and kills their processes, of runs no longer alive",
  ignore,
  async fn() {
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const stale = `p2pt${gone.pid}-dead-1-sw`;
    const add = await new Deno.Command("ip", { args: ["netns", "add", stale] }).output();
    assert.ok(add.success, new TextDecoder().decode(add.stderr));
    const orphan = new Deno.Command("ip", {
      args: ["netns", "exec", stale, "sh", "-c", "echo inside; exec sleep 60"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = lines(orphan);
    // Once it printed, it is in the namespace, where `ip netns pids` finds it.
    assert.equal(await out.next(), "inside");

    await using _lan = await createLan({ hosts: 1 });
    assert.equal((await orphan.status).signal, "SIGKILL");
    await out.close();
    assert.ok(!(await listNetns()).includes(stale));
  },
});

Deno.test({
  name: "A LAN left undestroyed is deleted when its process exits",
  ignore,
  async fn() {
    const script = `
import { createLan } from ${JSON.stringify(new URL("./_netns.ts", import.meta.url).href)};
const lan = await createLan({ hosts: 2 });
lan.spawn(lan.hosts[0], ["sleep", "60"]);
console.log(JSON.stringify([lan.switchName, ...lan.hosts.map((h) => h.name)]));
Deno.exit(0);
`;
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: CHILD_ENV,
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.ok(run.success, stderr);
    const names: string[] = JSON.parse(new TextDecoder().decode(run.stdout));
    assert.equal(names.length, 3);
    const left = await listNetns();
    assert.deepEqual(names.filter((name) => left.includes(name)), []);
  },
});

Deno.test("createLan() rejects subnets outside 10.77.0.0/16 and host counts that do not fit", async () => {
  await assert.rejects(createLan({ hosts: 0 }), RangeError);
  await assert.rejects(createLan({ hosts: 15 }), RangeError);
  await assert.rejects(createLan({ hosts: 2.5 }), RangeError);
  await assert.rejects(createLan({ hosts: 2, subnet: "10.78.0.0/28" }), RangeError);
  await assert.rejects(createLan({ hosts: 2, subnet: "10.77.0.8/28" }), RangeError);
  await assert.rejects(createLan({ hosts: 2, subnet: "10.77.0.0/8" }), RangeError);
  await assert.rejects(createLan({ hosts: 2, subnet: "192.168.0.0/28" }), RangeError);
  await assert.rejects(createLan({ hosts: 2, subnet: "10.77.0.0" }), RangeError);
});

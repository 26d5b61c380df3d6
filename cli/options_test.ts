import assert from "node:assert/strict";
import { InvalidArgumentError } from "@commander-js/extra-typings";
import {
  dirname,
  keepLanOffProxies,
  LAN_NO_PROXY,
  parseBytes,
  parseHost,
  parsePeerAddress,
  parsePort,
  parseScanRange,
  parseSeconds,
  parseUrl,
} from "./options.ts";

Deno.test("parsePort() takes 0..65535 and rejects the rest", () => {
  assert.equal(parsePort("0"), 0);
  assert.equal(parsePort("65535"), 65535);
  for (const bad of ["65536", "-1", "abc", "1.5", ""]) {
    assert.throws(() => parsePort(bad), InvalidArgumentError, bad);
  }
});

Deno.test("parseBytes() understands plain numbers and binary and decimal units", () => {
  assert.equal(parseBytes("1048576"), 1048576);
  assert.equal(parseBytes("64MiB"), 64 * 1024 * 1024);
  assert.equal(parseBytes("10M"), 10 * 1024 * 1024);
  assert.equal(parseBytes("1.5GB"), 1_500_000_000);
  assert.equal(parseBytes("2k"), 2048);
  for (const bad of ["12XB", "0", "-5", "MiB", ""]) {
    assert.throws(() => parseBytes(bad), InvalidArgumentError, bad);
  }
});

Deno.test("parseSeconds(), parseHost() and parseUrl() reject malformed values", () => {
  assert.equal(parseSeconds("1.5"), 1.5);
  assert.throws(() => parseSeconds("-1"), InvalidArgumentError);
  assert.throws(() => parseSeconds("0"), InvalidArgumentError);
  assert.equal(parseHost("[::1]"), "::1");
  assert.equal(parseHost("127.0.0.2"), "127.0.0.2");
  assert.throws(() => parseHost("a b"), InvalidArgumentError);
  assert.equal(parseUrl("http://127.0.0.1:5700/"), "http://127.0.0.1:5700");
  assert.throws(() => parseUrl("ftp://x"), InvalidArgumentError);
  assert.throws(() => parseUrl("not a url"), InvalidArgumentError);
});

Deno.test("dirname() returns the folder of a path", () => {
  assert.equal(dirname("/a/b/c.kv"), "/a/b");
  assert.equal(dirname("c.kv"), ".");
  assert.equal(dirname("/c.kv"), "/");
});

Deno.test("keepLanOffProxies() adds the LAN ranges to NO_PROXY only when a proxy is set", () => {
  const fake = (vars: Record<string, string>) => ({
    vars,
    get: (k: string) => vars[k],
    set: (k: string, v: string) => {
      vars[k] = v;
    },
  });
  const none = fake({});
  assert.equal(keepLanOffProxies(none), undefined);
  assert.deepEqual(none.vars, {});

  const proxied = fake({ HTTP_PROXY: "http://proxy:3128", NO_PROXY: "example.com, 10.0.0.0/8" });
  const value = keepLanOffProxies(proxied)!;
  const list = value.split(",");
  assert.equal(list[0], "example.com");
  for (const r of LAN_NO_PROXY) assert.ok(list.includes(r), r);
  assert.equal(list.filter((r) => r === "10.0.0.0/8").length, 1);
  assert.equal(proxied.vars.NO_PROXY, value);
  assert.equal(proxied.vars.no_proxy, value);
});

Deno.test("parseScanRange() accepts CIDR and FIRST-LAST and names what is wrong otherwise", () => {
  assert.equal(parseScanRange(" 10.77.0.0/28 "), "10.77.0.0/28");
  assert.equal(parseScanRange("10.0.0.1-10.0.0.9"), "10.0.0.1-10.0.0.9");
  assert.throws(() => parseScanRange("10.0.0.0/8"), /at most 4096/);
  assert.throws(() => parseScanRange("everything"), /Invalid range 'everything'/);
});

Deno.test("keepLanOffProxies() keeps one NO_PROXY entry per range however it is spelled", () => {
  const vars: Record<string, string> = { https_proxy: "http://proxy:3128", no_proxy: "FE80::/10" };
  const value = keepLanOffProxies({
    get: (k) => vars[k],
    set: (k, v) => {
      vars[k] = v;
    },
  })!;
  const list = value.split(",");
  assert.equal(list[0], "FE80::/10", "the first spelling stays");
  assert.ok(!list.includes("fe80::/10"));
  assert.equal(list.length, LAN_NO_PROXY.length);
});

Deno.test("parsePeerAddress() reads HOST:PORT, [IPv6]:PORT, HOST and a bare IPv6 address", () => {
  assert.deepEqual(parsePeerAddress("127.0.0.2:5900"), { host: "127.0.0.2", port: 5900 });
  assert.deepEqual(parsePeerAddress("[::1]:5900"), { host: "::1", port: 5900 });
  assert.deepEqual(parsePeerAddress("127.0.0.2"), { host: "127.0.0.2", port: 5801 });
  assert.deepEqual(parsePeerAddress("fe80::1"), { host: "fe80::1", port: 5801 });
  for (const bad of ["127.0.0.2:0", "127.0.0.2:70000", "a b", ""]) {
    assert.throws(() => parsePeerAddress(bad), InvalidArgumentError, bad);
  }
});

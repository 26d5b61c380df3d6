import assert from "node:assert/strict";
import fc from "fast-check";
import {
  formatRange,
  inRange,
  interfaceRanges,
  ipv4ToNumber,
  MAX_RANGE_ADDRESSES,
  numberToIpv4,
  parseRange,
  PingbackAnswer,
  pingbackSignedBytes,
} from "./discovery.ts";

Deno.test("parseRange() takes the host addresses of a CIDR block", () => {
  assert.equal(formatRange(parseRange("10.77.0.0/28")), "10.77.0.1-10.77.0.14");
  assert.equal(formatRange(parseRange("10.77.0.9/28")), "10.77.0.1-10.77.0.14");
  assert.equal(formatRange(parseRange("10.77.1.0/24")), "10.77.1.1-10.77.1.254");
  assert.equal(formatRange(parseRange("10.0.0.4/31")), "10.0.0.4-10.0.0.5");
  assert.equal(formatRange(parseRange("10.0.0.4/32")), "10.0.0.4-10.0.0.4");
});

Deno.test("parseRange() takes FIRST-LAST, a short FIRST-N and one address", () => {
  assert.equal(formatRange(parseRange("10.0.0.5-10.0.0.20")), "10.0.0.5-10.0.0.20");
  assert.equal(formatRange(parseRange("10.0.0.5-20")), "10.0.0.5-10.0.0.20");
  assert.equal(formatRange(parseRange(" 127.0.0.2 ")), "127.0.0.2-127.0.0.2");
  assert.equal(formatRange(parseRange("10.0.0.255-10.0.1.3")), "10.0.0.255-10.0.1.3");
});

Deno.test("parseRange() rejects bad, reversed and oversized ranges with the value quoted", () => {
  assert.throws(() => parseRange("10.0.0.0/33"), /prefix \/33/);
  assert.throws(() => parseRange("10.0.0.0/8"), RangeError);
  assert.throws(() => parseRange("10.0.0.0/19"), /at most 4096/);
  assert.doesNotThrow(() => parseRange("10.0.0.0/20"));
  assert.throws(() => parseRange("10.0.0.9-10.0.0.1"), /end comes before the start/);
  assert.throws(() => parseRange("10.0.0.256"), /Invalid IPv4 address '10.0.0.256'/);
  assert.throws(() => parseRange("010.0.0.1"), TypeError);
  assert.throws(() => parseRange("lan"), /Invalid range 'lan'/);
  assert.throws(() => parseRange(""), TypeError);
  assert.throws(() => parseRange("fe80::1/64"), TypeError);
});

Deno.test("ipv4ToNumber() and numberToIpv4() are inverse over all of IPv4", () => {
  fc.assert(fc.property(fc.ipV4(), (ip) => numberToIpv4(ipv4ToNumber(ip)) === ip));
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      (n) => ipv4ToNumber(numberToIpv4(n)) === n,
    ),
  );
});

Deno.test("parseRange() of any CIDR block holds its addresses and never more than the cap", () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 20, max: 32 }), (ip, bits) => {
      const r = parseRange(`${ip}/${bits}`);
      assert.ok(r.last - r.first + 1 <= MAX_RANGE_ADDRESSES);
      assert.ok(r.first <= r.last);
      const n = ipv4ToNumber(ip);
      const size = 2 ** (32 - bits);
      const base = n - (n % size);
      const hosts = bits <= 30 ? [base + 1, base + size - 2] : [base, base + size - 1];
      assert.deepEqual([r.first, r.last], hosts);
      const isEdge = bits <= 30 && (n === base || n === base + size - 1);
      assert.equal(inRange(r, ip), !isEdge);
    }),
  );
});

Deno.test("inRange() answers for addresses inside and outside, and for non-addresses", () => {
  const r = parseRange("10.77.0.0/28");
  assert.equal(inRange(r, "10.77.0.1"), true);
  assert.equal(inRange(r, "10.77.0.14"), true);
  assert.equal(inRange(r, "10.77.0.15"), false);
  assert.equal(inRange(r, "10.77.0.0"), false);
  assert.equal(inRange(r, "not-an-ip"), false);
});

Deno.test("interfaceRanges() skips loopback, link-local, IPv6 and narrows big subnets to a /24", () => {
  const ranges = interfaceRanges([
    { family: "IPv4", address: "127.0.0.1", cidr: "127.0.0.1/8" },
    { family: "IPv6", address: "fe80::1", cidr: "fe80::1/64" },
    { family: "IPv4", address: "169.254.3.4", cidr: "169.254.3.4/16" },
    { family: "IPv4", address: "10.77.1.20", cidr: "10.77.1.20/24" },
    { family: "IPv4", address: "10.77.1.21", cidr: "10.77.1.21/24" },
    { family: "IPv4", address: "10.5.6.7", cidr: "10.5.6.7/8" },
    { family: "IPv4", address: "10.9.9.9", cidr: "10.9.9.9/32" },
  ]);
  assert.deepEqual(ranges.map(formatRange), [
    "10.77.1.1-10.77.1.254",
    "10.5.6.1-10.5.6.254",
  ]);
});

const ANSWER = {
  service: "p2p",
  protocol: 1,
  version: "0.1.0",
  peerId: "a".repeat(40),
  name: "laptop",
  publicKey: "O2b6ICK4I4As-dHIsXAFgZOBf_8EJwcLOMsxsI7wZXI",
  ports: { pingback: 5800, chunk: 5801, http: 5805 },
};

Deno.test("PingbackAnswer accepts a peer's answer and rejects other JSON", () => {
  assert.equal(PingbackAnswer.safeParse(ANSWER).success, true);
  assert.equal(PingbackAnswer.safeParse({ ...ANSWER, extra: 1 }).success, true);
  for (
    const bad of [
      { status: "ok" },
      { ...ANSWER, service: "other" },
      { ...ANSWER, peerId: "xyz" },
      { ...ANSWER, publicKey: "short" },
      { ...ANSWER, ports: { chunk: 5801 } },
      { ...ANSWER, ports: { pingback: 0, chunk: 5801 } },
      { ...ANSWER, signature: "not-a-signature" },
      [],
      null,
    ]
  ) {
    assert.equal(PingbackAnswer.safeParse(bad).success, false, JSON.stringify(bad));
  }
});

Deno.test("pingbackSignedBytes() covers the nonce, the peerId and every port", () => {
  const ports = { pingback: 5800, chunk: 5801, http: 5805 };
  const base = new TextDecoder().decode(pingbackSignedBytes("n".repeat(16), ANSWER.peerId, ports));
  assert.equal(base, `p2p-pingback-v1\n${"n".repeat(16)}\n${ANSWER.peerId}\n5800,5801,5805,0`);
  const variants = [
    pingbackSignedBytes("m".repeat(16), ANSWER.peerId, ports),
    pingbackSignedBytes("n".repeat(16), "b".repeat(40), ports),
    pingbackSignedBytes("n".repeat(16), ANSWER.peerId, { ...ports, chunk: 5802 }),
    pingbackSignedBytes("n".repeat(16), ANSWER.peerId, { ...ports, app: 5810 }),
  ].map((b) => new TextDecoder().decode(b));
  for (const v of variants) assert.notEqual(v, base);
});

import assert from "node:assert/strict";
import {
  hostPort,
  httpUrl,
  isIPv6,
  isLoopback,
  isWildcard,
  plainAddress,
  reachableHost,
  urlHost,
} from "./net_addr.ts";

Deno.test("plainAddress() strips the IPv4-mapped prefix and leaves hostnames alone", () => {
  assert.deepEqual(plainAddress("::ffff:10.0.0.2"), "10.0.0.2");
  assert.deepEqual(plainAddress("::FFFF:127.0.0.3"), "127.0.0.3");
  assert.deepEqual(plainAddress("127.0.0.1"), "127.0.0.1");
  assert.deepEqual(plainAddress("fe80:0:0:0:0:0:0:1"), "fe80::1");
  assert.deepEqual(plainAddress("peer.local"), "peer.local");
});

Deno.test("isWildcard() is true for every unspecified form and nothing else", () => {
  for (const h of ["", "0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0"]) {
    assert.deepEqual(isWildcard(h), true, h);
  }
  for (const h of ["127.0.0.1", "::1", "localhost", "10.0.0.1"]) {
    assert.deepEqual(isWildcard(h), false);
  }
});

Deno.test("isLoopback() knows 127.0.0.0/8, ::1 and localhost", () => {
  for (const h of ["127.0.0.1", "127.0.0.9", "::1", "::ffff:127.0.0.2", "localhost"]) {
    assert.deepEqual(isLoopback(h), true, h);
  }
  for (const h of ["10.0.0.1", "0.0.0.0", "example"]) assert.deepEqual(isLoopback(h), false, h);
});

Deno.test("urlHost(), hostPort() and httpUrl() bracket IPv6 literals only", () => {
  assert.deepEqual(isIPv6("::1"), true);
  assert.deepEqual(isIPv6("127.0.0.1"), false);
  assert.deepEqual(urlHost("::1"), "[::1]");
  assert.deepEqual(urlHost("[::1]"), "[::1]");
  assert.deepEqual(urlHost("peer.local"), "peer.local");
  assert.deepEqual(hostPort("127.0.0.2", 5801), "127.0.0.2:5801");
  assert.deepEqual(hostPort("fe80::1", 5805), "[fe80::1]:5805");
  assert.deepEqual(httpUrl("::1", 80), "http://[::1]:80");
  assert.deepEqual(reachableHost("0.0.0.0"), "127.0.0.1");
  assert.deepEqual(reachableHost("127.0.0.4"), "127.0.0.4");
});

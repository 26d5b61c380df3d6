import assert from "node:assert/strict";
import { copyBody, tunnel } from "./body.ts";
import { HttpParseError } from "./errors.ts";
import type { BodyFraming } from "./framing.ts";
import { Inbox, writeAll } from "./inbox.ts";
import { socketPair } from "./_socket_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Sends `text` (then ends the socket when `end`) and copies one body as `framing`
 * says: what `copyBody` resolved with, each write, and what is left in the inbox.
 */
async function copy(text: string, framing: BodyFraming, end = false, lead = "") {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  await writeAll(pair.client, encoder.encode(text));
  if (end) pair.client.close();
  await inbox.fill();
  if (lead) assert.ok(inbox.prepend(encoder.encode(lead)));
  const writes: string[] = [];
  const complete = await copyBody(inbox, framing, (b) => {
    writes.push(decoder.decode(b));
    return Promise.resolve();
  }, lead.length);
  return { complete, writes, left: decoder.decode(inbox.bytes()) };
}

Deno.test("copyBody() copies a counted body and leaves the next message, the lead in the same write", async () => {
  const r = await copy("hello GET /", { kind: "length", length: 5 }, false, "HEAD|");
  assert.deepEqual(r, { complete: true, writes: ["HEAD|hello"], left: " GET /" });
});

Deno.test("copyBody() copies a chunked body as it is, up to its end", async () => {
  const body = "5;x=1\r\nhello\r\n0\r\nT: v\r\n\r\n";
  const r = await copy(body + "NEXT", { kind: "chunked" });
  assert.deepEqual(r, { complete: true, writes: [body], left: "NEXT" });
});

Deno.test("copyBody() copies a close-delimited body to the end, and sends a lead with no body", async () => {
  assert.deepEqual(await copy("all of it", { kind: "close" }, true), {
    complete: true,
    writes: ["all of it"],
    left: "",
  });
  const none = await copy("NEXT", { kind: "none" }, false, "HEAD|");
  assert.deepEqual(none, { complete: true, writes: ["HEAD|"], left: "NEXT" });
});

Deno.test("copyBody() resolves false when the socket ends before the body does", async () => {
  const r = await copy("hel", { kind: "length", length: 5 }, true);
  assert.deepEqual(r, { complete: false, writes: ["hel"], left: "" });
  const chunked = await copy("5\r\nhel", { kind: "chunked" }, true);
  assert.equal(chunked.complete, false);
});

Deno.test("copyBody() rejects a malformed chunked body", async () => {
  await assert.rejects(() => copy("zz\r\n", { kind: "chunked" }), HttpParseError);
});

Deno.test("tunnel() relays bytes both ways until one side ends, then closes both", async () => {
  await using left = await socketPair();
  await using right = await socketPair();
  const relaying = tunnel(new Inbox(left.server), new Inbox(right.server));
  const buf = new Uint8Array(16);
  await writeAll(left.client, encoder.encode("ping"));
  assert.equal(decoder.decode(buf.subarray(0, (await right.client.read(buf))!)), "ping");
  await writeAll(right.client, encoder.encode("pong"));
  assert.equal(decoder.decode(buf.subarray(0, (await left.client.read(buf))!)), "pong");
  left.client.close();
  await relaying;
  assert.equal(await right.client.read(buf), null);
});

import assert from "node:assert/strict";
import { headEnd, MAX_HEAD } from "./head.ts";
import {
  HEADROOM,
  Inbox,
  INITIAL_BUFFER,
  MAX_BUFFER,
  READ_SIZE,
  readHead,
  writeAll,
} from "./inbox.ts";
import { socketPair } from "./_socket_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A head parser for the tests: the head as text. */
const asText = (bytes: Uint8Array) => decoder.decode(bytes);
const tooLarge = () => new RangeError("too large");

Deno.test("Inbox.fill() appends what the socket sends; consume() drops it from the front", async () => {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  await writeAll(pair.client, encoder.encode("hello"));
  assert.equal(await inbox.fill(), true);
  assert.equal(decoder.decode(inbox.bytes()), "hello");
  assert.equal(decoder.decode(inbox.bytes(2)), "he");
  inbox.consume(2);
  assert.equal(inbox.length, 3);
  await writeAll(pair.client, encoder.encode(" world"));
  await inbox.fill();
  assert.equal(decoder.decode(inbox.bytes()), "llo world");
  inbox.consume(inbox.length);
  assert.equal(inbox.start, HEADROOM, "an empty inbox starts again after its headroom");
});

Deno.test("Inbox.prepend() puts bytes before the unconsumed ones when there is room", async () => {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  await writeAll(pair.client, encoder.encode("body"));
  await inbox.fill();
  assert.equal(inbox.prepend(encoder.encode("head:")), true);
  assert.equal(decoder.decode(inbox.bytes()), "head:body");
  assert.equal(inbox.prepend(new Uint8Array(HEADROOM)), false, "no room left before");
});

Deno.test("Inbox.fill() resolves false at the end, calls onEnd once, and watch() notices the end", async () => {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  let ended = 0;
  inbox.onEnd = () => ended++;
  await writeAll(pair.client, encoder.encode("last"));
  pair.client.close();
  assert.equal(await inbox.fill(), true);
  inbox.watch();
  assert.equal(await inbox.fill(), false);
  assert.equal(inbox.eof, true);
  assert.equal(ended, 1);
  assert.equal(decoder.decode(inbox.bytes()), "last");
});

Deno.test("Inbox grows from 16 KiB to its limit for a body that keeps coming, no further", async () => {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  assert.equal(inbox.buf.length, INITIAL_BUFFER);
  const sending = writeAll(pair.client, new Uint8Array(4 * MAX_BUFFER));
  let read = 0;
  while (read < 4 * MAX_BUFFER) {
    await inbox.fill();
    read += inbox.length;
    inbox.consume(inbox.length);
  }
  await sending;
  assert.ok(inbox.buf.length > INITIAL_BUFFER && inbox.buf.length <= MAX_BUFFER);
  assert.equal(MAX_BUFFER, HEADROOM + MAX_HEAD + READ_SIZE);
});

Deno.test("readHead() finds a head sent a byte at a time and leaves what follows", async () => {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  const text = "GET / HTTP/1.1\r\nHost: a\r\n\r\nnext";
  const sending = (async () => {
    for (const c of text) {
      await writeAll(pair.client, encoder.encode(c));
      await new Promise((r) => setTimeout(r, 0));
    }
  })();
  const head = await readHead(inbox, asText, tooLarge);
  assert.equal(head, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  await sending;
  while (inbox.length < 4) await inbox.fill();
  assert.equal(decoder.decode(inbox.bytes()), "next");
});

Deno.test("readHead() throws tooLarge() past MAX_HEAD and resolves undefined at the end", async () => {
  await using pair = await socketPair();
  const inbox = new Inbox(pair.server);
  const sending = writeAll(pair.client, encoder.encode("X".repeat(MAX_HEAD + 10))).catch(() => {});
  await assert.rejects(() => readHead(inbox, asText, tooLarge), RangeError);
  await sending;

  await using quiet = await socketPair();
  const ending = new Inbox(quiet.server);
  await writeAll(quiet.client, encoder.encode("GET / HTTP/1.1\r\n"));
  quiet.client.close();
  assert.equal(await readHead(ending, asText, tooLarge), undefined);
  assert.equal(headEnd(ending.bytes(), ending.length), -1);
});

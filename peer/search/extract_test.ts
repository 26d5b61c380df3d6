import assert from "node:assert/strict";
import { decodeUtf8, htmlText, readHead, sniffType, textOf } from "./extract.ts";
import { phraseIn, snippetOf } from "./snippet.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("sniffType() uses the extension, then magic numbers, JSON, HTML and UTF-8", () => {
  assert.equal(sniffType("a.MD", enc("x")), "text/markdown");
  assert.equal(
    sniffType(undefined, new Uint8Array([0x25, 0x50, 0x44, 0x46, 1])),
    "application/pdf",
  );
  assert.equal(sniffType("x", enc(' {"a": 1}')), "application/json");
  assert.equal(sniffType("x", enc("{not json")), "text/plain");
  assert.equal(sniffType("x", enc("<!DOCTYPE html><p>hi")), "text/html");
  assert.equal(sniffType("x", new Uint8Array([0xff, 0xfe, 0])), "application/octet-stream");
});

Deno.test("decodeUtf8() drops a character cut at the end, refuses NUL and bad UTF-8", () => {
  const e = enc("née");
  assert.equal(decodeUtf8(e.subarray(0, 2)), "n");
  assert.equal(decodeUtf8(e), "née");
  assert.equal(decodeUtf8(new Uint8Array([0x61, 0])), undefined);
  assert.equal(decodeUtf8(new Uint8Array([0xc3, 0x28, 0x61])), undefined);
});

Deno.test("htmlText() and textOf() keep the text of HTML and nothing of binary types", () => {
  assert.equal(
    htmlText("<script>var x = 1</script><h1>Title &amp; more</h1><!-- no --><p>Body</p>"),
    "Title & more Body",
  );
  assert.equal(textOf("image/png", enc("abc")), "");
  assert.equal(textOf("text/csv", enc("a,b")), "a,b");
});

Deno.test("readHead() reads at most its cap and cancels the stream", async () => {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull: (c) => c.enqueue(new Uint8Array(10).fill(1)),
    cancel: () => void (cancelled = true),
  });
  assert.equal((await readHead(stream, 25)).length, 25);
  assert.ok(cancelled);
});

Deno.test("snippetOf() marks the matched words around the first match; phraseIn() finds words in order", () => {
  const text = `${"lorem ipsum ".repeat(20)}the Élan of cats and catalogs ${"dolor ".repeat(40)}`;
  const s = snippetOf(text, ["elan", "cat"]);
  assert.equal(s[0].text.startsWith("… "), true);
  assert.deepEqual(s.filter((p) => p.mark).map((p) => p.text), ["Élan", "cats", "catalogs"]);
  assert.ok(s.at(-1)!.text.endsWith(" …"));
  assert.deepEqual(snippetOf("東京タワー", ["京"]).filter((p) => p.mark), [{
    text: "京",
    mark: true,
  }]);
  assert.ok(phraseIn(["a", "b", "c"], ["b", "c"]));
  assert.ok(!phraseIn(["a", "b", "c"], ["c", "b"]));
});

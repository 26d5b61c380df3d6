import assert from "node:assert/strict";
import { postStream } from "./stream_post.ts";

/** Serves `handler` on 127.0.0.1, port 0; disposing shuts it down. */
function serve(handler: Deno.ServeHandler) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A body of `parts` parts of 64 KiB; `cancelled` resolves when its reader cancels it. */
function body(parts: number) {
  const cancelled = Promise.withResolvers<void>();
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      if (sent++ === parts) return ctrl.close();
      ctrl.enqueue(new Uint8Array(65536).fill(sent & 255));
    },
    cancel() {
      cancelled.resolve();
    },
  });
  return { stream, cancelled: cancelled.promise };
}

Deno.test("postStream() sends the whole body and streams the answer with its status and headers", async () => {
  await using server = serve(async (req) => {
    const bytes = await req.bytes();
    return new Response(`${req.headers.get("x-a")} ${bytes.length}`, {
      status: 201,
      headers: { "x-b": "2" },
    });
  });
  const res = await postStream(server.url, body(32).stream, { headers: { "x-a": "1" } });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("x-b"), "2");
  assert.equal(await res.text(), `1 ${32 * 65536}`);
});

Deno.test("postStream() stops sending and cancels the body when the answer ends first", async () => {
  await using server = serve(() => Response.json({ error: "too large" }, { status: 413 }));
  const b = body(100_000);
  const res = await postStream(server.url, b.stream);
  assert.equal(res.status, 413);
  assert.deepEqual(await res.json(), { error: "too large" });
  await b.cancelled;
});

Deno.test("postStream() ignores what comes after its answer is cancelled", async () => {
  await using server = serve(() =>
    new Response(new Blob([new Uint8Array(1 << 20)]).stream(), { status: 200 })
  );
  const res = await postStream(server.url, new Blob(["x"]).stream());
  const reader = res.body!.getReader();
  await reader.read();
  await reader.cancel();
  // An end or data event after the cancel must not throw (it would be uncaught).
  await new Promise((r) => setTimeout(r, 50));
});

Deno.test("postStream() rejects with unreachable(cause) when nothing listens, and with the abort reason", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    postStream(`http://127.0.0.1:${port}/`, new Blob(["x"]).stream(), {
      unreachable: (cause) => new Error("nobody there", { cause }),
    }),
    /nobody there/,
  );
  const hang = Promise.withResolvers<void>();
  await using server = serve(async () => {
    await hang.promise;
    return new Response("late");
  });
  const abort = new AbortController();
  const posting = postStream(server.url, new Blob(["x"]).stream(), { signal: abort.signal });
  setTimeout(() => abort.abort(new Error("stop")), 20);
  await assert.rejects(posting, /stop/);
  hang.resolve();
});

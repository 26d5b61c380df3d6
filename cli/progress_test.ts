import { downloadProgress, putProgress } from "./progress.ts";

Deno.test("progress displays draw nothing when disabled (stderr not a terminal)", () => {
  const get = downloadProgress(false);
  get.update({
    payloadId: "a".repeat(64),
    size: 10,
    chunks: 1,
    done: 1,
    bytes: 10,
    fetchedBytes: 10,
    seconds: 1,
    sources: 1,
  });
  get.stop();
  const put = putProgress(10, false);
  put.read(5);
  put.update({ type: "stored", payloadId: "a".repeat(64), size: 10, chunks: 1 });
  put.update({ type: "replicated", index: 0, copies: 1, done: 1, chunks: 1 });
  put.stop();
});

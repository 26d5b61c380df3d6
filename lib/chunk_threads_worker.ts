/**
 * The worker side of `chunk_threads.ts`: hashes a view of shared memory, or writes it
 * into a file at an offset (opened by path for that one write), and answers with the
 * hash, nothing, or the error's name and message. See `chunk_threads.ts`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { createHash } from "node:crypto";
import { writeAtSync } from "./file_io.ts";
import type { ThreadAnswer, ThreadJob } from "./chunk_threads.ts";

self.onmessage = (e: MessageEvent<ThreadJob>) => {
  const job = e.data;
  let answer: ThreadAnswer;
  try {
    const bytes = new Uint8Array(job.buffer, job.byteOffset, job.length);
    if (job.op === "sha256") {
      answer = { id: job.id, hex: createHash("sha256").update(bytes).digest("hex") };
    } else {
      using file = Deno.openSync(job.path, { write: true });
      writeAtSync(file, job.offset, bytes);
      answer = { id: job.id };
    }
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    answer = { id: job.id, error: { name: error.name, message: error.message } };
  }
  self.postMessage(answer);
};

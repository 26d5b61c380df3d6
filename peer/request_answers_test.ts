import assert from "node:assert/strict";
import { NotFoundError, P2pError } from "../proto/errors.ts";
import type { Message, MessageInit } from "../proto/messages.ts";
import type { PeerConnection } from "./connection.ts";
import { answerRequest, errorMessage, MAX_ERROR_MESSAGE } from "./request_answers.ts";

const conn = {} as PeerConnection;
const ping = { type: "PING", requestId: 5, header: { ts: 9 }, body: new Uint8Array() } as Message;
const have = {
  type: "HAVE_REQ",
  requestId: 6,
  header: { hashes: [] },
  body: new Uint8Array(),
} as unknown as Message;

Deno.test("answerRequest() returns what the handler returns, given the request and connection", async () => {
  const seen: unknown[] = [];
  const out = await answerRequest(
    (msg, c) => {
      seen.push(msg, c);
      return { type: "PONG", header: { ts: 1 } };
    },
    ping,
    conn,
  );
  assert.deepEqual(out, { type: "PONG", header: { ts: 1 } });
  assert.deepEqual(seen, [ping, conn]);
});

Deno.test("answerRequest() turns a thrown P2pError into ERROR with its code, anything else into internal", async () => {
  const notFound = await answerRequest(
    () => {
      throw new NotFoundError("not_found", "No such chunk");
    },
    have,
    conn,
  );
  assert.deepEqual(notFound?.header, { code: "not_found", message: "No such chunk" });
  const noCode = await answerRequest(() => Promise.reject(new P2pError("", "odd")), have, conn);
  assert.deepEqual(noCode?.header, { code: "internal", message: "odd" });
  const plain = await answerRequest(
    () => {
      throw new Error("disk on fire");
    },
    have,
    conn,
  );
  assert.deepEqual(plain, { type: "ERROR", header: { code: "internal", message: "disk on fire" } });
});

Deno.test("answerRequest() answers an unanswered PING with PONG, and without a handler says unsupported", async () => {
  assert.deepEqual(await answerRequest(() => undefined, ping, conn), {
    type: "PONG",
    header: { ts: 9 },
  });
  assert.deepEqual(await answerRequest(undefined, ping, conn), { type: "PONG", header: { ts: 9 } });
  const unsupported = await answerRequest(undefined, have, conn);
  assert.equal(unsupported?.type, "ERROR");
  assert.deepEqual(unsupported?.header, {
    code: "unsupported",
    message: "This peer does not serve 'HAVE_REQ' requests",
  });
  assert.equal(await answerRequest(() => undefined, have, conn), undefined);
});

Deno.test("errorMessage() cuts the code to 64 and the message to MAX_ERROR_MESSAGE characters", () => {
  const out = errorMessage("c".repeat(100), "m".repeat(5000)) as MessageInit & {
    header: { code: string; message: string };
  };
  assert.equal(out.type, "ERROR");
  assert.equal(out.header.code.length, 64);
  assert.equal(out.header.message.length, MAX_ERROR_MESSAGE);
});

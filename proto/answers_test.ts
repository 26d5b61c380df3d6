import assert from "node:assert/strict";
import { ANSWER_OF, expectAnswer, isAnswerType, isRequestType, RemoteError } from "./answers.ts";
import { P2pError, ProtocolError } from "./errors.ts";
import { MessageType } from "./messages.ts";

const empty = new Uint8Array(0);
const ID = "ab".repeat(32);

Deno.test("ANSWER_OF pairs every request type with an answer type, none shared", () => {
  const answers = Object.values(ANSWER_OF);
  assert.equal(new Set(answers).size, answers.length);
  for (const [req, ans] of Object.entries(ANSWER_OF)) {
    assert.ok(req in MessageType && ans in MessageType);
    assert.ok(isRequestType(req) && !isAnswerType(req));
    assert.ok(isAnswerType(ans) && !isRequestType(ans));
  }
  assert.ok(isAnswerType("ERROR"));
  assert.ok(!isRequestType("HELLO") && !isAnswerType("HELLO"));
  assert.ok(!isRequestType("toString"), "no inherited keys");
});

Deno.test("expectAnswer() returns an answer of the request's answer type as it is", () => {
  const chunk = {
    type: "CHUNK" as const,
    requestId: 3,
    header: { payloadId: ID, index: 0 },
    body: new Uint8Array([1]),
  };
  assert.equal(expectAnswer("GET_CHUNK", chunk), chunk);
});

Deno.test("expectAnswer() turns ERROR into a RemoteError with the other side's code", () => {
  assert.throws(
    () =>
      expectAnswer("HAVE_REQ", {
        type: "ERROR",
        requestId: 4,
        header: { code: "unknown_payload", message: "No payload here" },
        body: empty,
      }),
    (err) =>
      err instanceof RemoteError && err instanceof P2pError && err.code === "unknown_payload" &&
      err.message === "No payload here" && err.name === "RemoteError",
  );
});

Deno.test("expectAnswer() rejects an answer of another type with ProtocolError 'unexpected_answer'", () => {
  assert.throws(
    () => expectAnswer("PING", { type: "PEERS", requestId: 9, header: { peers: [] }, body: empty }),
    (err) =>
      err instanceof ProtocolError && err.code === "unexpected_answer" &&
      /Expected 'PONG' answer for request '9', got 'PEERS'/.test(err.message),
  );
});

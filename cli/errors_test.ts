import assert from "node:assert/strict";
import { errorLine, humanMessage } from "./errors.ts";
import { NotFoundError } from "../proto/errors.ts";

const ID = "0123456789abcdef".repeat(4);
const PEER = "fedcba9876".repeat(4);

Deno.test("humanMessage() drops class names and HTTP statuses, shortens ids and names each once", () => {
  assert.equal(humanMessage("TypeError: fetch failed"), "Fetch failed");
  assert.equal(
    humanMessage(`Cannot download '${ID}' (HTTP 409): '${ID}' needs room\nmore`),
    "Cannot download '0123456789ab': it needs room more",
  );
  assert.equal(humanMessage(`peer ${PEER} is gone`), "Peer fedcba9876fe is gone");
});

Deno.test("errorLine() starts with 'p2p: ', or with --json is {error:{code,message}}", () => {
  const err = new NotFoundError("unknown_payload", `No payload '${ID}' here`);
  assert.equal(errorLine(err, false), "p2p: No payload '0123456789ab' here");
  assert.deepEqual(JSON.parse(errorLine(err, true)), {
    error: { code: "unknown_payload", message: "No payload '0123456789ab' here" },
  });
  assert.deepEqual(JSON.parse(errorLine(new Error("boom"), true)).error.code, "failed");
});

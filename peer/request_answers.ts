/**
 * What a connection answers to a request from the other side: the contract of a
 * `RequestHandler` (`connection.ts` hands each request to one) and how its outcome
 * becomes the answer. What the handler returns goes back as is; what it throws goes
 * back as ERROR, with the error's code when it is a `P2pError`; a PING nobody
 * answered gets PONG, an HTTP_OPEN nobody took gets HTTP_RESET `unsupported` (so
 * the opener need not wait for its timeout), and a connection without a handler says
 * ERROR `unsupported`.
 * Sending the answer, with the request's `requestId`, is the connection's part.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PeerConnection } from "./connection.ts";
 * import { answerRequest } from "./request_answers.ts";
 *
 * const conn = {} as PeerConnection;
 * const ping = { type: "PING", requestId: 7, header: { ts: 1 }, body: new Uint8Array() } as const;
 * assert.deepEqual(await answerRequest(undefined, ping, conn), {
 *   type: "PONG",
 *   header: { ts: 1 },
 * });
 * const failing = () => {
 *   throw new Error("disk on fire");
 * };
 * const answer = await answerRequest(failing, ping, conn);
 * assert.deepEqual(answer?.header, { code: "internal", message: "disk on fire" });
 * ```
 *
 * @module
 */
import type { OutgoingMessage } from "../proto/answers.ts";
import { errorMessage as textOf, P2pError } from "../proto/errors.ts";
import type { Message } from "../proto/messages.ts";
import type { PeerConnection } from "./connection.ts";

/**
 * What a handler returns: the answer (its `requestId` is replaced by the request's).
 * `sent`, when present, is called once the answer has been written or could not be:
 * e.g. to give a pooled body buffer back.
 */
export type HandlerResult = OutgoingMessage & { requestId?: number; sent?: () => void };

/**
 * Answers one request from the other side. The returned message goes back with the
 * request's `requestId`; `undefined` sends nothing (except for PING, which is then
 * answered with PONG). A thrown error is sent as ERROR with the error's `code` when
 * it is a string, else `"internal"`; the connection stays open.
 */
export type RequestHandler = (
  msg: Message,
  conn: PeerConnection,
) => Promise<HandlerResult | undefined> | HandlerResult | undefined;

/** Longest error message put into an ERROR frame. */
export const MAX_ERROR_MESSAGE = 1024;

/** An ERROR answer, its code cut to 64 and its message to `MAX_ERROR_MESSAGE` characters. */
export function errorMessage(code: string, message: string): HandlerResult {
  return {
    type: "ERROR",
    header: { code: code.slice(0, 64), message: message.slice(0, MAX_ERROR_MESSAGE) },
  };
}

/**
 * The answer to `msg`, a request that came over `conn`: what `handler` returns, or
 * ERROR for what it throws (the code of a `P2pError` with one, else `internal`).
 * When there is nothing to send (undefined), a PING gets PONG, an HTTP_OPEN gets
 * HTTP_RESET `unsupported`, and without a handler any other request gets ERROR
 * `unsupported`; else undefined: send nothing. Never rejects.
 */
export async function answerRequest(
  handler: RequestHandler | undefined,
  msg: Message,
  conn: PeerConnection,
): Promise<HandlerResult | undefined> {
  let out: HandlerResult | undefined;
  if (handler) {
    try {
      out = await handler(msg, conn);
    } catch (err) {
      out = errorMessage(
        err instanceof P2pError && err.code.length > 0 ? err.code : "internal",
        textOf(err),
      );
    }
  }
  if (out !== undefined) return out;
  if (msg.type === "PING") return { type: "PONG", header: msg.header };
  if (msg.type === "HTTP_OPEN") {
    return {
      type: "HTTP_RESET",
      header: { code: "unsupported", message: "This peer serves no HTTP over the link" },
    };
  }
  if (!handler) {
    return errorMessage("unsupported", `This peer does not serve '${msg.type}' requests`);
  }
  return undefined;
}

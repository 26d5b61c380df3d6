/**
 * Which answer belongs to which request of the peer wire protocol, and the check of
 * an answer against its request: the right type comes back typed, ERROR becomes a
 * `RemoteError` with the other side's code, and any other type a `ProtocolError`
 * `unexpected_answer`. Pure: `peer/connection.ts` calls it when an answer arrives, so
 * no caller of `request()` checks the type again.
 *
 * ```ts
 * import { ANSWER_OF, expectAnswer, RemoteError } from "./answers.ts";
 *
 * console.assert(ANSWER_OF.GET_CHUNK === "CHUNK");
 * const pong = expectAnswer("PING", { type: "PONG", requestId: 1, header: {}, body: new Uint8Array() });
 * console.assert(pong.type === "PONG");
 * try {
 *   expectAnswer("PING", {
 *     type: "ERROR",
 *     requestId: 1,
 *     header: { code: "busy", message: "Too busy" },
 *     body: new Uint8Array(),
 *   });
 * } catch (err) {
 *   console.assert(err instanceof RemoteError && err.code === "busy");
 * }
 * ```
 *
 * @module
 */
import { P2pError, ProtocolError } from "./errors.ts";
import type { Message, MessageInit, MessageOf, MessageTypeName } from "./messages.ts";

/** The answer type of each request type. */
export const ANSWER_OF = {
  HAVE_REQ: "HAVE",
  GET_CHUNK: "CHUNK",
  PUT_CHUNK: "PUT_OK",
  MANIFEST_REQ: "MANIFEST",
  PEERS_REQ: "PEERS",
  LOG_REQ: "LOG",
  PING: "PONG",
  PAYLOADS_REQ: "PAYLOADS",
  SEARCH_REQ: "SEARCH",
} as const satisfies Partial<Record<MessageTypeName, MessageTypeName>>;
/** A message type that asks for an answer: `"GET_CHUNK"`, `"PING"`, … */
export type RequestTypeName = keyof typeof ANSWER_OF;
/** A message type that answers a request (ERROR answers any of them). */
export type AnswerTypeName = (typeof ANSWER_OF)[RequestTypeName] | "ERROR";
/** The answer message of a request type, e.g. `AnswerOf<"GET_CHUNK">` is a CHUNK message. */
export type AnswerOf<T extends RequestTypeName> = MessageOf<(typeof ANSWER_OF)[T]>;

/** `Omit` applied to each member of a union, so the union stays discriminated. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A message to send without its `requestId`, which the connection fills in. */
export type OutgoingMessage = DistributiveOmit<MessageInit, "requestId">;
/** A request to send: a request type's message without its `requestId`. */
export type RequestInit<T extends RequestTypeName = RequestTypeName> = DistributiveOmit<
  Extract<MessageInit, { type: T }>,
  "requestId"
>;

const ANSWER_TYPES: ReadonlySet<string> = new Set<string>([...Object.values(ANSWER_OF), "ERROR"]);

/** Whether a message type asks for an answer. */
export function isRequestType(type: string): type is RequestTypeName {
  return Object.hasOwn(ANSWER_OF, type);
}

/** Whether a message type answers a request (ERROR included). */
export function isAnswerType(type: string): type is AnswerTypeName {
  return ANSWER_TYPES.has(type);
}

/** The other side answered a request (or our HELLO) with ERROR; `code` is its code, e.g. `not_held`. */
export class RemoteError extends P2pError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/**
 * Checks that `answer` answers a request of type `request`: returns it typed when it
 * is of the request's answer type; throws `RemoteError` when it is ERROR, and
 * `ProtocolError` `unexpected_answer` when it is any other type.
 */
export function expectAnswer<T extends RequestTypeName>(request: T, answer: Message): AnswerOf<T> {
  const expect = ANSWER_OF[request];
  if (answer.type === expect) return answer as AnswerOf<T>;
  if (answer.type === "ERROR") throw new RemoteError(answer.header.code, answer.header.message);
  throw new ProtocolError(
    "unexpected_answer",
    `Expected '${expect}' answer for request '${answer.requestId}', got '${answer.type}'`,
  );
}

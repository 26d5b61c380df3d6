/**
 * The tracker's own error answers, each a `P2pError` with the code and status its
 * HTTP API has always used: an unknown peer or payload, bytes the tracker does not
 * hold, and bodies over a limit.
 *
 * @module
 */
import { NotFoundError, P2pError } from "../proto/errors.ts";

/** A request body or payload over a limit: `413 payload_too_large`. */
export class PayloadTooLargeError extends P2pError {
  constructor(message: string) {
    super("payload_too_large", message, { status: 413 });
  }
}

/** A payload over `--max-upload`; `size` may be a lower bound (`at least`). */
export function uploadTooLarge(size: number, limit: number, atLeast = false): PayloadTooLargeError {
  return new PayloadTooLargeError(
    `Payload of ${atLeast ? "at least " : ""}${size} bytes is over this tracker's limit of ` +
      `${limit} bytes (--max-upload); share large files peer to peer with \`p2p put FILE\``,
  );
}

/** A JSON body over its endpoint's limit (not `--max-upload`). */
export function bodyTooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`Request body is over this endpoint's limit of ${limit} bytes`);
}

/** No live peer with this id: `404 unknown_peer`. */
export function unknownPeer(peerId: string): NotFoundError {
  return new NotFoundError(
    "unknown_peer",
    `No live peer with id '${peerId}' (register with POST /peers)`,
  );
}

/** No payload with this id: `404 unknown_payload`. */
export function unknownPayload(payloadId: string): NotFoundError {
  return new NotFoundError("unknown_payload", `No payload with id '${payloadId}'`);
}

/** The tracker knows the payload but not its bytes: `404 not_stored`. */
export function notStored(payloadId: string): NotFoundError {
  return new NotFoundError(
    "not_stored",
    `The tracker does not hold the bytes of payload '${payloadId}'; ask its holders: ` +
      `GET /payloads/${payloadId}/peers`,
  );
}

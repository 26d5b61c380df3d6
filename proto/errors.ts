/**
 * Domain errors shared by every role. Each sets `name` and keeps `cause`; the edges
 * map them to HTTP statuses (tracker, control API) or to wire error codes (TCP).
 *
 * @module
 */

/** A peer or client broke the protocol: bad magic, bad frame, bad header. */
export class ProtocolError extends Error {
  /** A short machine-readable code, also used as the wire/HTTP error code. */
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/** The other side speaks another protocol version than ours. */
export class VersionMismatchError extends ProtocolError {
  readonly theirs: number;
  readonly ours: number;
  constructor(theirs: number, ours: number, options?: ErrorOptions) {
    super(
      "version_mismatch",
      `Protocol version mismatch: peer speaks '${theirs}', this build speaks '${ours}'`,
      options,
    );
    this.name = "VersionMismatchError";
    this.theirs = theirs;
    this.ours = ours;
  }
}

/** A declared length is over the limit; nothing was allocated for it. */
export class FrameTooLargeError extends ProtocolError {
  readonly length: number;
  readonly limit: number;
  constructor(length: number, limit: number, options?: ErrorOptions) {
    super(
      "frame_too_large",
      `Frame of '${length}' bytes is over the limit of '${limit}' bytes`,
      options,
    );
    this.name = "FrameTooLargeError";
    this.length = length;
    this.limit = limit;
  }
}

/** Bytes did not hash to what a manifest or payloadId says they must. */
export class IntegrityError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "IntegrityError";
  }
}

/** A remote peer did not answer in time. */
export class PeerTimeoutError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PeerTimeoutError";
  }
}

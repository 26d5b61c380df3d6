/**
 * One error model for every role. `P2pError` carries a short machine-readable `code`,
 * a sentence-case `message`, the HTTP `status` it maps to where it has one, and the
 * `cause`. Protocol, relay, remote-peer, tracker-client, control and CLI errors all
 * extend it, so an edge maps any of them with one `instanceof P2pError` check: to a
 * JSON error body over HTTP, to an ERROR frame on the wire, to one line on the console.
 *
 * ```ts
 * import { NotFoundError, P2pError } from "./errors.ts";
 *
 * const err = new NotFoundError("unknown_peer", "Unknown peer 'ab12'");
 * console.assert(err instanceof P2pError && err.status === 404 && err.code === "unknown_peer");
 * ```
 *
 * @module
 */
import type { z } from "zod";

/** Where an input failed its schema, one entry per zod issue. */
export function zodIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join(".") || "(body)",
    message: i.message,
  }));
}

/** One line for a zod failure: `path: message` of its first issue. */
export function formatZodError(error: z.ZodError): string {
  const first = error.issues[0];
  if (!first) return "Invalid value";
  const path = first.path.map(String).join(".");
  return path ? `${path}: ${first.message}` : first.message;
}

/** The HTTP statuses an error of this program maps to. */
export type ErrorStatus =
  | 400
  | 401
  | 403
  | 404
  | 405
  | 408
  | 409
  | 413
  | 415
  | 429
  | 431
  | 500
  | 502
  | 503
  | 504
  | 505
  | 508;

/** Options of a `P2pError`: the standard `cause`, and the HTTP status where there is one. */
export interface P2pErrorOptions extends ErrorOptions {
  status?: ErrorStatus;
}

/** The base of every error this program raises on purpose: a code, a message, a status. */
export class P2pError extends Error {
  /** A short machine-readable code (`snake_case`), also the wire and HTTP error code. */
  readonly code: string;
  /** The HTTP status this error maps to at an HTTP edge, when it has one. */
  readonly status?: ErrorStatus;
  constructor(code: string, message: string, options?: P2pErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    if (options?.status !== undefined) this.status = options.status;
  }
}

/** Something asked for by id or name is not there: a payload, a peer, a route. Status 404. */
export class NotFoundError extends P2pError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, { ...options, status: 404 });
  }
}

/** A caller's input is wrong: a bad id, a bad range, a body that fails its schema. Status 400. */
export class InvalidInputError extends P2pError {
  /** Where the input failed its schema, one entry per issue. */
  readonly issues?: { path: string; message: string }[];
  constructor(
    code: string,
    message: string,
    options?: ErrorOptions & { issues?: { path: string; message: string }[] },
  ) {
    super(code, message, { ...options, status: 400 });
    if (options?.issues) this.issues = options.issues;
  }
}

/** A peer or client broke the protocol: bad magic, bad frame, bad header. */
export class ProtocolError extends P2pError {
  constructor(code: string, message: string, options?: P2pErrorOptions) {
    super(code, message, options);
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
      { ...options, status: 413 },
    );
    this.length = length;
    this.limit = limit;
  }
}

/** Bytes did not hash to what a manifest or payloadId says they must. */
export class IntegrityError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("integrity", message, { ...options, status: 502 });
  }
}

/** A remote peer did not answer in time. */
export class PeerTimeoutError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("timeout", message, { ...options, status: 504 });
  }
}

/**
 * The caller did not prove who it is or that it may ask: no token, a bad token, no
 * proof of the network key, a signature that does not verify. Status 401.
 */
export class UnauthorizedError extends P2pError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, { ...options, status: 401 });
  }
}

/**
 * The caller is known but may not do this: another origin, another peer's record, a
 * push nobody agreed to. Status 403.
 */
export class ForbiddenError extends P2pError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, { ...options, status: 403 });
  }
}

/** The caller asks too often, or holds too many connections. Status 429. */
export class RateLimitedError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("rate_limited", message, { ...options, status: 429 });
  }
}

/** A size limit: a body, a manifest, the store. Status 413. */
export class TooLargeError extends P2pError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, { ...options, status: 413 });
  }
}

/** The code of any error: its own when it is a `P2pError`, `"internal"` otherwise. */
export function errorCode(err: unknown): string {
  return err instanceof P2pError ? err.code : "internal";
}

/** The message of any thrown value, for logs and one-line reports. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

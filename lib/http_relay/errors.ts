/**
 * The relay's two errors, both `P2pError`s: `HttpParseError` for a message the
 * codec cannot accept (its `status` is what a server answers with), and
 * `ProxyError` for a request the relay could not take to its upstream (502, 504,
 * 508). Each answers with the JSON error body `{ error: { code, message } }`.
 *
 * @module
 */
import { P2pError } from "../../proto/errors.ts";

/** The statuses of an `HttpParseError`. */
export type ParseStatus = 400 | 431 | 502 | 505;

/**
 * A malformed or unsupported HTTP/1.x message. `status` is what a server answers
 * with (400, 431, 502, 505) and `code` a short snake_case code (see `head.ts`); a
 * proxy maps a fault of a response head to 502.
 */
export class HttpParseError extends P2pError {
  /** The HTTP status a server answers this fault with. */
  declare readonly status: ParseStatus;
  constructor(status: ParseStatus, code: string, message: string, options?: ErrorOptions) {
    super(code, message, { ...options, status });
  }
}

/** The statuses of a `ProxyError`. */
export type ProxyStatus = 502 | 504 | 508;
/** The codes of a `ProxyError`, one per status. */
export type ProxyCode = "bad_gateway" | "gateway_timeout" | "loop_detected";

/** A relay failure, with the HTTP status and error code it answers with. */
export class ProxyError extends P2pError {
  /** 502 (bad gateway), 504 (gateway timeout) or 508 (loop detected). */
  declare readonly status: ProxyStatus;
  /** The code of the status: `bad_gateway`, `gateway_timeout` or `loop_detected`. */
  declare readonly code: ProxyCode;
  constructor(status: ProxyStatus, message: string, options?: ErrorOptions) {
    super(
      status === 502 ? "bad_gateway" : status === 504 ? "gateway_timeout" : "loop_detected",
      message,
      { ...options, status },
    );
  }
}

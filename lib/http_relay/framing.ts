/**
 * How the body after an HTTP/1.1 head is delimited (RFC 9112 §6.3): by a length,
 * by chunked coding, by the end of the connection, or not at all. Strict for
 * requests, since the server behind a proxy must see the same body. Sans-IO.
 *
 * @module
 */
import { contentLength, listMembers, show } from "./_syntax.ts";
import { HttpParseError } from "./errors.ts";
import { headerValues, type RequestHead, type ResponseHead } from "./head.ts";

/** How a message body is delimited. */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" }
  | { kind: "close" }; // response only: body runs until the upstream closes

/**
 * How a request's body is delimited (RFC 9112 §6.3), strictly, since the server
 * behind the proxy must see the same body. With `Transfer-Encoding`: `chunked`,
 * which must be the final coding and appear only once, over all fields, else 400
 * `bad_transfer_encoding`, as also in an HTTP/1.0 request; together with
 * `Content-Length` it is 400 `ambiguous_length`. With `Content-Length`: every
 * value, over fields and comma-separated members, must be the same string of
 * 1..15 ASCII digits, else 400 `bad_content_length`; a length of 0 is `none`.
 * Neither field: `none`.
 */
export function requestFraming(head: RequestHead): BodyFraming {
  const te = headerValues(head.headers, "transfer-encoding");
  const cl = headerValues(head.headers, "content-length");
  if (te.length > 0) {
    if (cl.length > 0) {
      throw new HttpParseError(
        400,
        "ambiguous_length",
        `Bad request framing: both Transfer-Encoding ${show(te.join(", "))} and Content-Length ${
          show(cl.join(", "))
        }`,
      );
    }
    if (head.version === "HTTP/1.0") {
      throw new HttpParseError(
        400,
        "bad_transfer_encoding",
        `Bad request framing: Transfer-Encoding ${show(te.join(", "))} in an HTTP/1.0 request`,
      );
    }
    const codings = listMembers(te).map((c) => c.toLowerCase());
    const chunked = codings.filter((c) => c === "chunked").length;
    if (codings.at(-1) !== "chunked" || chunked !== 1) {
      throw new HttpParseError(
        400,
        "bad_transfer_encoding",
        `Bad request framing: Transfer-Encoding ${
          show(te.join(", "))
        } does not end in one 'chunked'`,
      );
    }
    return { kind: "chunked" };
  }
  if (cl.length === 0) return { kind: "none" };
  const length = contentLength(cl);
  if (length === undefined) {
    throw new HttpParseError(
      400,
      "bad_content_length",
      `Bad request framing: Content-Length ${show(cl.join(", "))} is not one run of 1..15 digits`,
    );
  }
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

/**
 * How a response's body is delimited, given the method of the request it answers
 * (RFC 9112 §6.3): `none` for an answer to HEAD, a 1xx, 204 or 304, and a 2xx
 * answer to CONNECT (the tunnel starts); `chunked` when `Transfer-Encoding` ends in
 * `chunked` (any `Content-Length` is then ignored); `close` when it ends in
 * another coding, or comes in an HTTP/1.0 response (faulty framing, §6.1);
 * `length` for a valid `Content-Length` (`none` when 0), under the rules of
 * `requestFraming()`; `close` when neither field is there. An invalid
 * `Content-Length` throws `HttpParseError(502, "bad_upstream_head")`.
 */
export function responseFraming(head: ResponseHead, requestMethod: string): BodyFraming {
  const { status } = head;
  if (requestMethod === "HEAD" || status < 200 || status === 204 || status === 304) {
    return { kind: "none" };
  }
  if (requestMethod === "CONNECT" && status < 300) return { kind: "none" };
  const te = headerValues(head.headers, "transfer-encoding");
  if (te.length > 0) {
    const final = listMembers(te).at(-1)?.toLowerCase();
    return final === "chunked" && head.version === "HTTP/1.1"
      ? { kind: "chunked" }
      : { kind: "close" };
  }
  const cl = headerValues(head.headers, "content-length");
  if (cl.length === 0) return { kind: "close" };
  const length = contentLength(cl);
  if (length === undefined) {
    throw new HttpParseError(
      502,
      "bad_upstream_head",
      `Bad upstream response framing: Content-Length ${
        show(cl.join(", "))
      } is not one run of 1..15 digits`,
    );
  }
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

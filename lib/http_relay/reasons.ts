/**
 * The reason phrases of HTTP status codes (RFC 9110 section 15, with 421, 425, 428,
 * 429, 431, 451, 508 and 511 from their own RFCs), for the status lines the relay and
 * the gate write themselves. `node:http`'s `STATUS_CODES` has the same table, but
 * loading that module costs a process that never uses it about 40 ms.
 *
 * ```ts
 * import { reasonPhrase } from "./reasons.ts";
 *
 * console.assert(reasonPhrase(429) === "Too Many Requests");
 * console.assert(reasonPhrase(599) === "");
 * ```
 *
 * @module
 */

const PHRASES: Readonly<Record<number, string>> = {
  100: "Continue",
  101: "Switching Protocols",
  103: "Early Hints",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  451: "Unavailable For Legal Reasons",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  508: "Loop Detected",
  511: "Network Authentication Required",
};

/** The reason phrase of `status`, or "" for a code without one (a status line may leave it empty). */
export function reasonPhrase(status: number): string {
  return PHRASES[status] ?? "";
}

/**
 * An HTTP/1.1 reverse proxy over raw TCP, and the codec it is built on: what the
 * rest of the program imports from `lib/http_relay/`. `startRelay()` listens and
 * sends each request where a route function says (an upstream, or an answer made
 * here), relaying bodies as they are; the codec parses and frames HTTP/1.1
 * messages without I/O, for anything else that reads a small HTTP answer.
 *
 * The parts: `head.ts`, `encode.ts`, `framing.ts`, `chunked.ts` (the codec, with
 * `errors.ts`), `rewrite.ts` (what a proxy changes in heads), `inbox.ts` (a
 * socket's buffer), `deadlines.ts` (time limits on one timer), `pool.ts` (upstream
 * connections), `body.ts` (body copying), `exchange.ts` (one request and its
 * answer), `relay.ts` (the server), `types.ts` (its options and answers).
 *
 * On this repository's machine (2 cores, shared with `wrk` and the app), a 10 KiB
 * answer from an app process went through at 26,000 to 30,000 requests/s, against
 * 15,000 to 17,500 through the `Deno.serve` + `fetch` proxy it replaced and 44,000
 * through nginx; 1 GiB went down at 95 % and up at 91 % of the direct rate, the
 * relay's RSS peaking at 49 MiB (see `make bench http_proxy`).
 *
 * @example A relay in front of an app server
 * ```ts
 * import assert from "node:assert/strict";
 * import { startRelay } from "./mod.ts";
 *
 * const app = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("hi"));
 * const relay = startRelay({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   via: "1.1 p2p-3f2a9c",
 *   route: () => ({ upstream: `http://127.0.0.1:${app.addr.port}` }),
 * });
 * const res = await fetch(relay.url);
 * assert.equal(await res.text(), "hi");
 * assert.equal(res.headers.get("via"), "1.1 p2p-3f2a9c");
 * await relay.close();
 * await app.shutdown();
 * ```
 *
 * @module
 */
export { startRelay } from "./relay.ts";
export type {
  LocalAnswer,
  Relay,
  RelayLimitOptions,
  RelayOptions,
  RelayRefusal,
  RelayRequest,
  RelayRoute,
  RelayStats,
} from "./types.ts";
export { HttpParseError, ProxyError } from "./errors.ts";
export {
  headEnd,
  type HeaderList,
  headerValue,
  MAX_HEAD,
  parseResponseHead,
  type ResponseHead,
} from "./head.ts";
export { type BodyFraming, responseFraming } from "./framing.ts";
export { decodeChunked } from "./chunked.ts";

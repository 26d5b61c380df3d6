/**
 * The relay's public shapes: what the route function sees and answers, the
 * options of `startRelay()`, and the running relay with its counters.
 *
 * @module
 */
import type { ProxyError } from "./errors.ts";
import type { HeaderList } from "./head.ts";

/** A request as the route function sees it. */
export interface RelayRequest {
  method: string;
  /** The path, as sent (not decoded). */
  path: string;
  /** The query with its `?`, or `""`. */
  search: string;
  headers: HeaderList;
  /** The client's address. */
  remoteAddr: string;
}

/** Where a request goes: an upstream, or an answer made here. */
export type RelayRoute =
  | {
    /** Base URL of the upstream, e.g. `http://127.0.0.1:5810`; a path in it goes first. */
    upstream: string;
    /** A path prefix removed before forwarding (and put back in `Location`). */
    stripPrefix?: string;
    /** Request header fields not sent upstream (lower case), e.g. `cookie`. */
    dropRequestHeaders?: readonly string[];
    /** Answer header fields not passed on to the client (lower case), e.g. `set-cookie`. */
    dropAnswerHeaders?: readonly string[];
    /**
     * Header fields added to the answer (after the upstream's own, which stay), e.g. a
     * `Content-Security-Policy` that sandboxes what an untrusted upstream serves.
     */
    answerHeaders?: Record<string, string>;
    /**
     * How to reach the upstream instead of a TCP connection to its host and port (a
     * stream tunnelled over another protocol, say); `upstream` still gives the `Host`
     * and the base path.
     */
    connector?: Connector;
  }
  | { answer: LocalAnswer };

/** Opens connections to an upstream that is not reached by TCP to its host and port. */
export interface Connector {
  /** What the idle connections it opened are kept under (not the upstream's `host:port`). */
  key: string;
  /**
   * A new connection: anything shaped like a `Deno.Conn` (`read`, `write`, `close`).
   * A rejection answers 502, with its message.
   */
  connect(): Promise<Deno.Conn>;
}

/** An answer made by the relay itself. */
export interface LocalAnswer {
  status: number;
  headers?: Record<string, string>;
  /** A JSON body, if any. */
  json?: unknown;
}

/** The relay's request-rate limit and its report of refusals (part of `RelayOptions`). */
export interface RelayLimitOptions {
  /**
   * Requests a second per client address (left out or 0: no limit); over it, 429
   * `rate_limited` with `Retry-After`. Loopback clients are counted too.
   */
  requestsPerSecond?: number;
  /** Requests an address may send at once before its rate applies (twice the rate). */
  requestBurst?: number;
  /** Told of each refusal for a limit: a connection over the per-address cap, a request over the rate. */
  onRefused?: (refusal: RelayRefusal) => void;
}

/** A request or connection the relay refused for one of its limits. */
export interface RelayRefusal {
  status: 429;
  code: "too_many_connections" | "rate_limited";
  /** The client's address. */
  from: string;
  message: string;
  /** The request refused, for `rate_limited`. */
  method?: string;
  path?: string;
}

/** Options of `startRelay()`. */
export interface RelayOptions extends RelayLimitOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on (0 picks a free one). */
  port: number;
  /**
   * A PEM certificate (chain) and private key: clients then speak HTTPS (TLS ends
   * here; upstreams are still plain HTTP), and `X-Forwarded-Proto` says `https`.
   */
  tls?: { cert: string; key: string };
  /** Where each request goes. A throw answers 502. */
  route(req: RelayRequest): RelayRoute;
  /**
   * This hop's `Via` entry, e.g. `1.1 p2p-3f2a9c`: appended to requests and
   * answers; a request that already lists it is a loop. Random if not given.
   */
  via?: string;
  /** A request whose `Via` lists this many hops or more is a loop (8). */
  maxHops?: number;
  /**
   * How long the upstream may leave the relay waiting, in ms (30 s): for its
   * answer, or to take more of a request body. Not spent on a slow client.
   */
  timeoutMs?: number;
  /** How long a client connection may wait between requests, in ms (60 s). */
  idleTimeoutMs?: number;
  /** How long a client may take to send a request head, in ms (30 s). */
  headTimeoutMs?: number;
  /**
   * How long a write to a client may wait for it to read, in ms (30 s); past it the
   * client's connection is closed (and the upstream's, which its answer was coming
   * from). A client that stops reading, over TCP or a peer link stream that never
   * gives credit back, holds its connection and upstream no longer than this.
   */
  sendTimeoutMs?: number;
  /**
   * How long an upstream connection is kept idle for the next request, in ms (4 s:
   * Node's servers close theirs after 5 s).
   */
  upstreamIdleMs?: number;
  /** Client connections served at once; more are closed at once (1024). */
  maxConnections?: number;
  /**
   * Client connections served at once from one address (64); more are answered 429
   * `too_many_connections` and closed, so that one host cannot take all the others'.
   */
  maxConnectionsPerAddress?: number;
  /** Called with each failure answered with (or cutting short) a 502, 504 or 508. */
  onError?: (err: ProxyError, req: RelayRequest) => void;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Its base URL, e.g. `http://127.0.0.1:5805` (`https://…` with TLS). */
  readonly url: string;
  /**
   * Serves a client connection that did not come through the listener (a stream
   * tunnelled over another protocol, say) as if it had: same limits, its `remoteAddr`
   * (a `Deno.NetAddr`) names the client. Closed at once when the relay is closing.
   */
  serve(conn: Deno.Conn): void;
  /** Stops listening, ends idle connections, and ends busy ones after `graceMs` (2 s). */
  close(graceMs?: number): Promise<void>;
  /** What it has done so far, and what it holds now. */
  stats(): RelayStats;
}

/** Counters of a relay, from its start. */
export interface RelayStats {
  /** Client connections open now. */
  connections: number;
  /** Requests read. */
  requests: number;
  /** Requests sent to an upstream. */
  forwarded: number;
  /** Failures reported to `onError` (502, 504, 508, answers cut short). */
  failures: number;
  /** Upstream connections kept idle now. */
  idleUpstream: number;
}

/**
 * The options of a peer (`p2p peer --help`): where it listens, its data directory,
 * its tracker and seeds, replication and the periods of its background work; and
 * what `PeerNode.start()` is wired with (`PeerWiring`).
 *
 * @module
 */

import type { PeerData } from "./data_dir.ts";
import type { HttpStats } from "../proto/control.ts";
import type { SearchBackend } from "./search/backend.ts";

/** Requests a second per client address on the main HTTP server, by default. */
export const DEFAULT_RATE_LIMIT = 200;

/** What a node is built from besides its options: its open data and its bound ports. */
export interface PeerWiring {
  /** The opened data directory; the node closes it when it stops. */
  data: PeerData;
  /** The chunk port's listener, bound already; the node serves it. */
  chunkListener: Deno.TcpListener;
  /** The ports of the peer's other servers, bound already. */
  ports: { http?: number; pingback?: number; app?: number };
  /** Counters of the main HTTP server. */
  httpStats?: () => HttpStats;
  /**
   * Serves a tunnel stream another peer opened over its link as a client connection
   * of the main HTTP server (`Relay.serve()`); without it, HTTP_OPEN is refused.
   */
  serveHttp?: (conn: Deno.Conn) => void;
}

/** Options of a peer; see `p2p peer --help`. */
export interface PeerOptions {
  /** Address the TCP and HTTP servers listen on. */
  host: string;
  /** TCP chunk port; 0 picks a free one. */
  port: number;
  /** HTTP control API port; 0 picks a free one. */
  httpPort: number;
  /** Pingback (LAN discovery) port; 0 picks a free one; undefined: no pingback server. */
  pingbackPort?: number;
  /** Built-in app server port; 0 picks a free one; undefined (and no `app`): no app. */
  appPort?: number;
  /** Base URL of an application server of the user's to proxy to instead of the built-in app. */
  app?: string;
  dataDir: string;
  name: string;
  /** Tracker base URL, when there is one. */
  tracker?: string;
  /** Peers to contact at start (`--peer HOST:PORT`). */
  seeds: { host: string; port: number }[];
  /** Copies pushed to other peers of every chunk this peer puts. */
  replicas: number;
  /** Tracker heartbeat period (default 20 s). */
  heartbeatMs?: number;
  /** Peer exchange period (default 30 s). */
  exchangeMs?: number;
  /** Print activity to stderr as it happens. */
  echo?: boolean;
  /** Cap on the bytes per second this peer serves to others. */
  maxUploadRate?: number;
  /**
   * Scan the LAN at start and every `scanIntervalMs`: a range (CIDR, FIRST-LAST), or
   * `""` for the subnets of this machine's interfaces. Undefined: never scan.
   */
  scan?: string;
  /** Period of `scan` (default 300 s). */
  scanIntervalMs?: number;
  /** Pingback port probed on devices during a scan (default: our own pingback port). */
  scanPingbackPort?: number;
  /**
   * The network key: links, tracker requests and pingback answers prove it. Undefined:
   * an open network (anyone may join; links are still encrypted and identities proven).
   */
  networkKey?: Uint8Array;
  /** PEM certificate chain and private key: the main HTTP server serves HTTPS. */
  tls?: { cert: string; key: string };
  /**
   * Requests a second per client address on the main HTTP server (default
   * `DEFAULT_RATE_LIMIT`), in bursts of up to twice that; 0: no limit. Loopback
   * clients count too.
   */
  rateLimit?: number;
  /** Most bytes the chunk store holds (default: keep 10 % of its disk free). */
  maxStore?: number;
  /**
   * Links without encryption, for measuring what encryption costs: accepted only when
   * both ends are loopback addresses. Identities and the network key are still proven.
   */
  plaintextLoopback?: boolean;
  /** The index that answers searches (default: the embedded one, `peer/search/backend.ts`). */
  search?: SearchBackend;
}

/**
 * The pingback server: a small HTTP server on the pingback port (default 5800) that
 * tells a scanning peer "yes, a p2p peer lives here", with its peerId, name, public
 * key and ports. With `?nonce=N` the answer is signed, so the caller can check it
 * comes from the holder of that peerId (see `proto/discovery.ts`).
 *
 * Only `GET /` (and `HEAD /`) is served; anything else gets a JSON error. It holds no
 * state and never blocks on the rest of the peer.
 *
 * @module
 */
import {
  Nonce,
  PINGBACK_SERVICE,
  type PingbackAnswer,
  type PingbackPorts,
  pingbackSignedBytes,
} from "../proto/discovery.ts";
import { toBase64Url } from "../proto/ids.ts";
import { PROTOCOL_VERSION } from "../proto/frame.ts";
import { VERSION } from "../version.ts";
import { errorBody } from "../lib/http_api.ts";
import { plainAddress } from "../lib/net_addr.ts";
import type { Identity } from "./identity.ts";

/** Options of `startPingback()`. */
export interface PingbackOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  identity: Identity;
  name: string;
  /** This peer's other ports (chunk, http, app), read on every request. */
  ports: () => Omit<PingbackPorts, "pingback">;
  /** Called for every request answered: for the activity log. */
  onRequest?: (fields: { from: string; status: number; signed: boolean }) => void;
}

/** A running pingback server. */
export interface PingbackServer extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  stop(): Promise<void>;
}

/** A JSON error in the shape every p2p HTTP API uses. */
function jsonError(status: number, code: string, message: string): Response {
  return Response.json(errorBody(code, message), { status });
}

/** Builds the answer to `GET /`; signed when `nonce` is given. */
export async function pingbackAnswer(
  identity: Identity,
  name: string,
  ports: PingbackPorts,
  nonce?: string,
): Promise<PingbackAnswer> {
  const answer: PingbackAnswer = {
    service: PINGBACK_SERVICE,
    protocol: PROTOCOL_VERSION,
    version: VERSION,
    peerId: identity.peerId,
    name,
    publicKey: identity.publicKey,
    ports,
  };
  if (nonce !== undefined) {
    const sig = await identity.sign(pingbackSignedBytes(nonce, identity.peerId, ports));
    answer.nonce = nonce;
    answer.signature = toBase64Url(sig);
  }
  return answer;
}

/** Starts the pingback server; resolves once it listens. */
export async function startPingback(opts: PingbackOptions): Promise<PingbackServer> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  let port = 0;
  const handler = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const res = await answer(req);
    opts.onRequest?.({
      from: plainAddress(info.remoteAddr.hostname),
      status: res.status,
      signed: res.status === 200 && new URL(req.url).searchParams.has("nonce"),
    });
    return res;
  };
  const answer = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname !== "/") {
      return jsonError(
        404,
        "not_found",
        `Nothing at '${url.pathname}': the pingback port serves GET /`,
      );
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return jsonError(405, "method_not_allowed", `Method '${req.method}' is not allowed: use GET`);
    }
    const raw = url.searchParams.get("nonce");
    let nonce: string | undefined;
    if (raw !== null) {
      const parsed = Nonce.safeParse(raw);
      if (!parsed.success) {
        return jsonError(400, "bad_request", `Invalid nonce: ${parsed.error.issues[0].message}`);
      }
      nonce = parsed.data;
    }
    const body = await pingbackAnswer(
      opts.identity,
      opts.name,
      { pingback: port, ...opts.ports() },
      nonce,
    );
    return Response.json(body, { headers: { "cache-control": "no-store" } });
  };
  const server = Deno.serve({
    hostname: opts.hostname,
    port: opts.port,
    onListen: (addr) => listening.resolve(addr),
    onError: (err) => jsonError(500, "internal", String(err)),
  }, handler);
  const addr = await listening.promise;
  port = addr.port;
  let stopping: Promise<void> | undefined;
  const stop = () => stopping ??= server.shutdown();
  return { addr, stop, [Symbol.asyncDispose]: stop };
}

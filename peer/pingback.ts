/**
 * The pingback server: a small HTTP server on the pingback port (default 5800) that
 * tells a scanning peer "yes, a p2p peer lives here", with its peerId, name, public
 * key and ports. With `?nonce=N` the answer is signed, so the caller can check it
 * comes from the holder of that peerId (see `proto/discovery.ts`).
 *
 * With a network key, the identity goes only to a caller whose `proof` proves the key
 * over its nonce; each nonce is taken once (the last `MAX_NONCES_KEPT` are
 * remembered), and everyone else gets `{ "p2p": "protected" }`. The answer then
 * carries this peer's own proof of the key.
 *
 * Only `GET /` (and `HEAD /`) is served; anything else gets a JSON error. It holds no
 * state and never blocks on the rest of the peer.
 *
 * @module
 */
import {
  KeyProofText,
  Nonce,
  PINGBACK_ANSWER_LABEL,
  PINGBACK_PROOF_LABEL,
  PINGBACK_SERVICE,
  type PingbackAnswer,
  type PingbackPorts,
  pingbackSignedBytes,
  type ProtectedAnswer,
} from "../proto/discovery.ts";
import { fromBase64Url, toBase64Url } from "../proto/ids.ts";
import { isOpenNetwork, keyProof, verifyKeyProof } from "../proto/network_key.ts";
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
  /** The network key: only a caller that proves it learns who this peer is. */
  networkKey?: Uint8Array;
  /** Called for every request answered: for the activity log. */
  onRequest?: (
    fields: { from: string; status: number; signed: boolean; protected?: boolean },
  ) => void;
}

/** Nonces of proven requests remembered, so a replayed request gets no identity. */
export const MAX_NONCES_KEPT = 4096;

/** A running pingback server. */
export interface PingbackServer extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  stop(): Promise<void>;
}

/** A JSON error in the shape every p2p HTTP API uses. */
function jsonError(status: number, code: string, message: string): Response {
  return Response.json(errorBody(code, message), { status });
}

/** Builds the answer to `GET /`; signed when `nonce` is given, with a key proof when `networkKey` is. */
export async function pingbackAnswer(
  identity: Identity,
  name: string,
  ports: PingbackPorts,
  nonce?: string,
  networkKey?: Uint8Array,
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
    if (networkKey) {
      const fields = [nonce, identity.peerId, identity.publicKey];
      answer.keyProof = toBase64Url(await keyProof(networkKey, PINGBACK_ANSWER_LABEL, fields));
    }
  }
  return answer;
}

/**
 * Whether a request proves the network key: a nonce not seen before and `proof`, the
 * key's HMAC over it. A proven nonce is remembered (at most `MAX_NONCES_KEPT`).
 */
async function proves(
  key: Uint8Array,
  nonce: string | undefined,
  proof: string | null,
  seen: Set<string>,
): Promise<boolean> {
  if (nonce === undefined || proof === null || !KeyProofText.safeParse(proof).success) return false;
  if (seen.has(nonce)) return false;
  if (!await verifyKeyProof(key, PINGBACK_PROOF_LABEL, [nonce], fromBase64Url(proof))) return false;
  seen.add(nonce);
  if (seen.size > MAX_NONCES_KEPT) seen.delete(seen.values().next().value!);
  return true;
}

/** Starts the pingback server; resolves once it listens. */
export async function startPingback(opts: PingbackOptions): Promise<PingbackServer> {
  const listening = Promise.withResolvers<Deno.NetAddr>();
  let port = 0;
  const key = opts.networkKey && !isOpenNetwork(opts.networkKey) ? opts.networkKey : undefined;
  const seen = new Set<string>();
  const handler = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const { res, hidden } = await answer(req);
    opts.onRequest?.({
      from: plainAddress(info.remoteAddr.hostname),
      status: res.status,
      signed: res.status === 200 && !hidden && new URL(req.url).searchParams.has("nonce"),
      ...(hidden ? { protected: true } : {}),
    });
    return res;
  };
  const answer = async (req: Request): Promise<{ res: Response; hidden?: boolean }> => {
    const res = await reply(req);
    if (res instanceof Response) return { res };
    const body: ProtectedAnswer = { p2p: "protected" };
    return { res: Response.json(body, { headers: { "cache-control": "no-store" } }), hidden: true };
  };
  /** The answer, or `"protected"` when this peer has a key the caller did not prove. */
  const reply = async (req: Request): Promise<Response | "protected"> => {
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
    if (key && !await proves(key, nonce, url.searchParams.get("proof"), seen)) return "protected";
    const body = await pingbackAnswer(
      opts.identity,
      opts.name,
      { pingback: port, ...opts.ports() },
      nonce,
      key,
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

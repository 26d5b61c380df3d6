/**
 * Search over the peer link: `askPeer()` sends SEARCH_REQ on a link that proved the
 * peer's id and checks the answer against `SearchHeader`; `answerSearch()` is the
 * receiver's side, for the request handler.
 *
 * `proto/answers.ts` does not yet list SEARCH_REQ among the request types (its
 * `ANSWER_OF` needs `SEARCH_REQ: "SEARCH"`), so `PeerConnection.request()` refuses
 * it with a TypeError and each peer asked is reported as missing with that message
 * until it does. The request is sent through an untyped view of `request()` for that
 * reason, and its answer is checked here with the zod schema.
 *
 * @module
 */
import { P2pError } from "../../proto/errors.ts";
import type { Message } from "../../proto/messages.ts";
import { type LocalHit, SearchHeader, type SearchReqHeader } from "../../proto/search.ts";
import { DEFAULT_SEARCH_LIMIT } from "../../proto/search.ts";
import type { PeerConnection } from "../connection.ts";
import { connectAs, type KnownDialer, type KnownPeer } from "../peer_table.ts";
import { hostPort } from "../../lib/net_addr.ts";
import type { SearchIndex } from "./search_index.ts";

/** Largest SEARCH header sent: under the frame's 64 KiB. */
const MAX_SEARCH_HEADER = 60_000;

type UntypedRequest = (
  msg: { type: string; header: SearchReqHeader },
  opts: { signal?: AbortSignal; timeoutMs?: number },
) => Promise<Message>;

/** Asks one peer's index over a link that proved its id. */
export async function askPeer(
  pool: KnownDialer,
  peer: KnownPeer,
  q: string,
  limit: number,
  signal: AbortSignal,
): Promise<LocalHit[]> {
  const c: PeerConnection | undefined = await connectAs(pool, peer);
  if (!c) {
    throw new P2pError(
      "unreachable",
      `Peer '${peer.peerId}' cannot be reached at ${hostPort(peer.host, peer.ports.chunk)}`,
    );
  }
  signal.throwIfAborted();
  const request = c.request.bind(c) as unknown as UntypedRequest;
  const res = await request({ type: "SEARCH_REQ", header: { q, limit } }, { signal });
  if (res.type !== "SEARCH") {
    throw new P2pError("unexpected_answer", `Peer answered '${res.type}' to SEARCH_REQ`);
  }
  return SearchHeader.parse(res.header).hits;
}

/** The SEARCH answer of this peer's index to a SEARCH_REQ (its 400s go back as ERROR). */
export async function answerSearch(
  index: SearchIndex,
  header: SearchReqHeader,
): Promise<{ type: "SEARCH"; header: { hits: LocalHit[] } }> {
  const hits = await index.search(header.q, header.limit ?? DEFAULT_SEARCH_LIMIT);
  // A header is at most 64 KiB: drop the last hits until it fits with room to spare.
  const size = () => new TextEncoder().encode(JSON.stringify({ hits })).length;
  while (hits.length > 0 && size() > MAX_SEARCH_HEADER) hits.pop();
  return { type: "SEARCH", header: { hits } };
}

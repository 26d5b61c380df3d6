/**
 * A search across the network: the local index and every live proven peer asked at
 * once (SEARCH_REQ over the link), under one deadline (`SEARCH_DEADLINE_MS`, 2 s by
 * default); a peer that has not answered by then, or answered an error, is named in
 * `missing` and not waited for. `mergeHits()` keeps one hit per payloadId with every
 * peer that holds it, ranked as `proto/search.ts` says (each peer's scores divided by
 * its best, the best over holders, then more holders first).
 *
 * @module
 */
import { errorMessage } from "../../proto/errors.ts";
import {
  type LocalHit,
  type MissingPeer,
  type NetworkHit,
  SEARCH_DEADLINE_MS,
  type SearchAnswer,
  type SearchHolder,
} from "../../proto/search.ts";
import { parseSearchQuery } from "../../proto/search_query.ts";

/** One peer to ask. */
export interface SearchPeer {
  peerId: string;
  name?: string;
}

/** What a network search needs: this peer, its index, the peers and how to ask one. */
export interface NetworkSearchDeps<P extends SearchPeer = SearchPeer> {
  self: SearchHolder;
  local: (q: string, limit: number) => Promise<LocalHit[]>;
  peers: () => P[];
  ask: (peer: P, q: string, limit: number, signal: AbortSignal) => Promise<LocalHit[]>;
  /** Aborts when the peer stops. */
  signal?: AbortSignal;
  deadlineMs?: number;
}

/** One holder's answer, for `mergeHits()`. */
export interface HolderHits {
  holder: SearchHolder;
  hits: LocalHit[];
}

/**
 * One hit per payloadId, best first, at most `limit`: the best score any holder gave,
 * the first name and type given (answers in the order passed), the union of tags.
 */
export function mergeHits(answers: HolderHits[], limit: number): NetworkHit[] {
  const byId = new Map<string, NetworkHit>();
  for (const { holder, hits } of answers) {
    for (const h of hits) {
      const had = byId.get(h.payloadId);
      if (!had) {
        byId.set(h.payloadId, { ...h, tags: [...h.tags], holders: [holder] });
        continue;
      }
      if (had.holders.some((x) => x.peerId === holder.peerId)) continue;
      had.holders.push(holder);
      if (h.score > had.score) {
        had.score = h.score;
        had.snippet = h.snippet;
      }
      if (!had.name && h.name) had.name = h.name;
      for (const t of h.tags) if (had.tags.length < 32 && !had.tags.includes(t)) had.tags.push(t);
    }
  }
  return [...byId.values()]
    .sort((a, b) =>
      b.score - a.score || b.holders.length - a.holders.length ||
      a.payloadId.localeCompare(b.payloadId)
    )
    .slice(0, limit);
}

/**
 * Searches here and on every peer at once. The query is parsed first, so a bad one
 * is an `InvalidInputError` (400) before anyone is asked.
 */
export async function searchNetwork<P extends SearchPeer>(
  deps: NetworkSearchDeps<P>,
  q: string,
  limit: number,
): Promise<SearchAnswer> {
  parseSearchQuery(q);
  const peers = deps.peers();
  const deadline = AbortSignal.timeout(deps.deadlineMs ?? SEARCH_DEADLINE_MS);
  const signal = deps.signal ? AbortSignal.any([deadline, deps.signal]) : deadline;
  const answers: (HolderHits | undefined)[] = new Array(peers.length).fill(undefined);
  const missing: MissingPeer[] = [];
  const late = Promise.withResolvers<void>();
  const onAbort = () => late.resolve();
  signal.addEventListener("abort", onAbort, { once: true });
  const local = await deps.local(q, limit);
  try {
    const done = Promise.all(peers.map(async (peer, i) => {
      try {
        const hits = await deps.ask(peer, q, limit, signal);
        if (!signal.aborted) answers[i] = { holder: holderOf(peer), hits };
      } catch (err) {
        if (!signal.aborted) missing.push({ ...holderOf(peer), message: errorMessage(err) });
      }
    }));
    await Promise.race([done, late.promise]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  for (const [i, peer] of peers.entries()) {
    const answered = answers[i] !== undefined || missing.some((m) => m.peerId === peer.peerId);
    if (!answered) {
      missing.push({ ...holderOf(peer), message: "Did not answer within the deadline" });
    }
  }
  const all = [{ holder: deps.self, hits: local }, ...answers.filter((a) => a !== undefined)];
  return { query: q, hits: mergeHits(all, limit), asked: peers.length, missing };
}

function holderOf(peer: SearchPeer): SearchHolder {
  return { peerId: peer.peerId, ...(peer.name ? { name: peer.name } : {}) };
}

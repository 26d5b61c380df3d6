/**
 * Ids people can type, resolved on the peer so that every client of the control API
 * benefits: a payload or a peer is named by its whole id, by a unique prefix of at
 * least `MIN_PREFIX` hex digits, or by its name when that is unique. A payload is
 * looked for in this peer's store first, then (when allowed) in the network catalogue;
 * a peer among this peer and the peers it knows. No match is `NotFoundError`
 * (`unknown_payload`, `unknown_peer`), several are `AmbiguousIdError` listing them,
 * something that is neither an id nor a name is `InvalidInputError` (`invalid_id`).
 *
 * ```ts
 * import { matches } from "./control_ids.ts";
 *
 * const all = [{ id: "ab12cd34".padEnd(64, "0"), name: "big.bin" }];
 * console.assert(matches(all, "ab12cd").length === 1);
 * console.assert(matches(all, "big.bin").length === 1);
 * console.assert(matches(all, "ab12").length === 0);
 * ```
 *
 * @module
 */
import { InvalidInputError, NotFoundError, P2pError } from "../proto/errors.ts";
import { shortId } from "../proto/control.ts";

/** Fewest hex digits a prefix must have. */
export const MIN_PREFIX = 6;
/** Matches listed in an ambiguity error. */
const LISTED = 5;

/** Several things match what was given: the error lists them (status 409). */
export class AmbiguousIdError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("ambiguous_id", message, { ...options, status: 409 });
  }
}

/** Something with an id and maybe a name, among which a reference is looked up. */
export interface Named {
  id: string;
  name?: string;
}

/**
 * The candidates `ref` names: the one whose id it is, else those whose id starts with
 * it (at least `MIN_PREFIX` hex digits), else those whose name it is. Each id once.
 */
export function matches<T extends Named>(all: Iterable<T>, ref: string): T[] {
  const list = [...all];
  const exact = list.filter((c) => c.id === ref);
  if (exact.length > 0) return unique(exact);
  const hex = ref.toLowerCase();
  if (/^[0-9a-f]+$/.test(hex) && hex.length >= MIN_PREFIX) {
    const byPrefix = list.filter((c) => c.id.startsWith(hex));
    if (byPrefix.length > 0) return unique(byPrefix);
  }
  return unique(list.filter((c) => c.name !== undefined && c.name === ref));
}

/** One entry per id, the first kept. */
function unique<T extends Named>(list: T[]): T[] {
  const seen = new Map<string, T>();
  for (const c of list) if (!seen.has(c.id)) seen.set(c.id, c);
  return [...seen.values()];
}

/** The one match, or the error for none or several; `what` is `payload` or `peer`. */
export function pick<T extends Named>(
  found: T[],
  ref: string,
  what: "payload" | "peer",
  looked = "here or on the network",
): T {
  if (found.length === 1) return found[0];
  if (found.length > 1) {
    const listed = found.slice(0, LISTED).map((c) =>
      c.name ? `${shortId(c.id)} (${c.name})` : shortId(c.id)
    );
    const more = found.length > LISTED ? ` and ${found.length - LISTED} more` : "";
    throw new AmbiguousIdError(
      `'${ref}' matches ${found.length} ${what}s: ${listed.join(", ")}${more}; give more of the id`,
    );
  }
  if (/^[0-9a-f]{1,5}$/i.test(ref)) {
    throw new InvalidInputError(
      "invalid_id",
      `'${ref}' is too short: give at least ${MIN_PREFIX} hex digits of the ${what} id, or its name`,
    );
  }
  throw new NotFoundError(
    what === "payload" ? "unknown_payload" : "unknown_peer",
    what === "payload"
      ? `No payload '${ref}' ${looked} (see p2p ls)`
      : `No peer '${ref}' is known here (see p2p peers)`,
  );
}

/** What the resolvers need of a peer. */
export interface IdSources {
  store: { list(): { payloadId: string; name?: string }[] };
  table: { list(): { peerId: string; name?: string }[] };
  status(): { peerId: string; name: string };
  networkPayloads?(): Promise<{ payloads: { payloadId: string; name?: string }[] }>;
}

/** A reference longer than any id or name is refused before it is looked up. */
function checkLength(ref: string): string {
  const trimmed = ref.trim();
  if (trimmed === "" || trimmed.length > 255) {
    throw new InvalidInputError("invalid_id", "Give an id (at least 6 hex digits) or a name");
  }
  return trimmed;
}

/**
 * The payloadId `ref` names: a whole id as it is; else among the payloads held here,
 * else (with `network`) among those the network catalogue lists.
 */
export async function resolvePayload(
  node: IdSources,
  ref: string,
  network = true,
): Promise<string> {
  ref = checkLength(ref);
  if (/^[0-9a-f]{64}$/.test(ref)) return ref;
  const here = matches(node.store.list().map((p) => ({ ...p, id: p.payloadId })), ref);
  if (here.length > 0 || !network || !node.networkPayloads) {
    return pick(here, ref, "payload", network ? undefined : "here").id;
  }
  const { payloads } = await node.networkPayloads();
  return pick(matches(payloads.map((p) => ({ ...p, id: p.payloadId })), ref), ref, "payload").id;
}

/** The peerId `ref` names: this peer or one it knows. */
export function resolvePeer(node: IdSources, ref: string): string {
  ref = checkLength(ref);
  const self = node.status();
  const all = [
    { id: self.peerId, name: self.name },
    ...node.table.list().map((p) => ({ id: p.peerId, ...(p.name ? { name: p.name } : {}) })),
  ];
  return pick(matches(all, ref), ref, "peer").id;
}

/**
 * The control API's answers about one payload (see `control.ts`): what a reference
 * names (`payloadInfo()`), and the removal of a payload's local copy
 * (`removePayload()`), refused while it downloads and, unless forced, when this peer
 * holds the last known copy of one of its chunks: a position no other holder in
 * `where()` (the peers that answered HAVE?, the tracker) has.
 *
 * @module
 */
import type { PayloadInfo, RemoveAnswer, WhereAnswer } from "../proto/control.ts";
import { hasBit } from "../proto/bitfield.ts";
import { fromHex } from "../proto/ids.ts";
import { NotFoundError, P2pError } from "../proto/errors.ts";
import type { ControlNode } from "./control.ts";
import { resolvePayload } from "./control_ids.ts";

/** `GET /_p2p/payloads/:ref`: the payload `ref` names, here or on the network. */
export async function payloadInfo(node: ControlNode, ref: string): Promise<PayloadInfo> {
  const payloadId = await resolvePayload(node, ref);
  const p = node.store.payload(payloadId);
  if (p) {
    return {
      payloadId,
      ...(p.name === undefined ? {} : { name: p.name }),
      size: p.size,
      chunks: p.chunks,
      here: true,
      held: p.held,
      complete: p.complete,
      pinned: p.pinned ?? false,
    };
  }
  const known = (await node.networkPayloads().catch(() => ({ payloads: [] }))).payloads
    .find((n) => n.payloadId === payloadId);
  return {
    payloadId,
    ...(known?.name === undefined ? {} : { name: known.name }),
    ...(known ? { size: known.size, chunks: known.chunks } : {}),
    here: false,
    held: 0,
    complete: false,
    pinned: false,
  };
}

/**
 * The chunk positions this peer holds that no other holder in `where` has: the
 * copies that would be lost with this peer's.
 */
export function lastCopies(where: WhereAnswer): number {
  const self = where.rows.find((r) => r.via === "self");
  if (!self) return 0;
  const mine = fromHex(self.have);
  const others = where.rows.filter((r) => r !== self).map((r) => fromHex(r.have));
  let lost = 0;
  for (let i = 0; i < where.chunks; i++) {
    if (hasBit(mine, i) && !others.some((o) => hasBit(o, i))) lost++;
  }
  return lost;
}

/**
 * `DELETE /_p2p/payloads/:ref`: removes the local copy of a payload held here. Refused
 * with 409 `downloading` while it downloads, and with 409 `last_copy` when this peer
 * holds the last known copy of some chunk, unless `force`.
 */
export async function removePayload(
  node: ControlNode,
  ref: string,
  force: boolean,
): Promise<RemoveAnswer> {
  const payloadId = await resolvePayload(node, ref, false);
  const p = node.store.payload(payloadId);
  if (!p) throw new NotFoundError("unknown_payload", "No such payload here (see p2p ls)");
  const label = p.name ? `'${p.name}'` : "this payload";
  if (node.status().downloads.includes(payloadId)) {
    throw new P2pError(
      "downloading",
      `${label} is being downloaded; cancel the download first`,
      { status: 409 },
    );
  }
  const lost = p.held === 0 ? 0 : lastCopies(await node.where(payloadId));
  if (lost > 0 && !force) {
    throw new P2pError(
      "last_copy",
      `This peer holds the only known copy of ${lost} of the ${p.chunks} chunks of ${label}; ` +
        "removing it loses them (use --force to remove it anyway)",
      { status: 409 },
    );
  }
  // Also tells the tracker, so that it stops listing this peer as a holder.
  const freedBytes = await node.remove(payloadId);
  node.log.record("payload.remove", { payloadId, freedBytes, lastCopies: lost, force });
  return {
    payloadId,
    ...(p.name === undefined ? {} : { name: p.name }),
    freedBytes,
    lastCopies: lost,
  };
}

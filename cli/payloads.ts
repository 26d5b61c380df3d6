/**
 * `p2p ls` and `p2p rm`: what the local peer's store holds, and removing a payload's
 * local copy (the peer refuses, unless `--force`, when it holds the last known copy
 * of some chunk). JSON output has ISO 8601 times.
 *
 * @module
 */
import { shortId, type StoredPayload } from "../proto/control.ts";
import { type PeerTarget, withPeer } from "./client.ts";
import { ago, size, tableLines } from "./format.ts";

/** A stored payload as `ls --json` prints it: `addedAt` in ISO 8601. */
function jsonRow(p: StoredPayload) {
  return { ...p, pinned: p.pinned ?? false, addedAt: new Date(p.addedAt).toISOString() };
}

/** `p2p ls`: the payloads held here, newest first. */
export async function ls(node: PeerTarget, opts: { json?: boolean }): Promise<void> {
  const [{ payloads }, status] = await withPeer(
    node,
    (client) => Promise.all([client.payloads(), client.status()]),
  );
  if (opts.json) return console.log(JSON.stringify(payloads.map(jsonRow)));
  if (payloads.length === 0) {
    return console.log("nothing held here yet (share a file with p2p put FILE)");
  }
  const rows = payloads.map((p) => [
    shortId(p.payloadId),
    p.name ?? "",
    size(p.size),
    p.complete ? `${p.chunks}` : `${p.held}/${p.chunks}`,
    p.pinned ? "yours" : "replica for others",
    ago(p.addedAt),
  ]);
  for (const line of tableLines(["ID", "NAME", "SIZE", "CHUNKS", "KEPT AS", "ADDED"], rows)) {
    console.log(line);
  }
  const n = payloads.length;
  const disk = status.store ? `, ${size(status.store.usedBytes)} on disk` : "";
  console.log(`${n} payload${n === 1 ? "" : "s"}${disk}`);
}

/** `p2p rm REF`: removes the local copy of a payload. */
export async function rm(
  node: PeerTarget,
  ref: string,
  opts: { force?: boolean; json?: boolean },
): Promise<void> {
  const r = await withPeer(node, (client) => client.remove(ref, opts.force));
  if (opts.json) return console.log(JSON.stringify(r));
  const what = r.name ? `${r.name} (${shortId(r.payloadId)})` : shortId(r.payloadId);
  const lost = r.lastCopies > 0 ? `; ${r.lastCopies} chunks had no other known copy` : "";
  console.log(`removed ${what}: ${size(r.freedBytes)} freed${lost}`);
}

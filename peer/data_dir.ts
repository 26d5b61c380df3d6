/**
 * A peer's data directory, opened: its identity (`identity.json`), its activity log
 * (`activity.jsonl`), its chunk store (`store/`) and its known-peers table
 * (`peers.kv`). Opened before any server starts, since they all need some of it,
 * and closed last.
 *
 * @module
 */
import { PeerLog } from "./activity.ts";
import { ChunkStore } from "./chunk_store.ts";
import { type Identity, loadIdentity } from "./identity.ts";
import { PeerTable } from "./peer_table.ts";

/** The open contents of a peer's data directory. */
export interface PeerData {
  readonly dataDir: string;
  readonly identity: Identity;
  readonly log: PeerLog;
  readonly store: ChunkStore;
  readonly table: PeerTable;
  /** Closes the store, the log and the table's KV. Idempotent. */
  close(): void;
}

/**
 * Opens (creating it when needed) a peer's data directory; `echo` prints activity to
 * stderr, `maxStore` caps the chunk store's bytes (default: keep 10 % of the disk free).
 */
export async function openPeerData(
  dataDir: string,
  opts: { echo?: boolean; maxStore?: number } = {},
): Promise<PeerData> {
  await Deno.mkdir(dataDir, { recursive: true });
  const identity = await loadIdentity(dataDir);
  const log = await PeerLog.open(`${dataDir}/activity.jsonl`, { echo: opts.echo });
  let store: ChunkStore | undefined;
  let kv: Deno.Kv | undefined;
  try {
    store = await ChunkStore.open(`${dataDir}/store`, { maxBytes: opts.maxStore });
    kv = await Deno.openKv(`${dataDir}/peers.kv`);
    const table = await PeerTable.open(kv, identity.peerId);
    let closed = false;
    const [s, k] = [store, kv];
    return {
      dataDir,
      identity,
      log,
      store,
      table,
      close() {
        if (closed) return;
        closed = true;
        s.close();
        log.close();
        k.close();
      },
    };
  } catch (err) {
    store?.close();
    kv?.close();
    log.close();
    throw err;
  }
}

/**
 * Test fixture: a peer started in-process with `startPeer()` on a loopback address,
 * every port picked free, in a data directory of its own; disposing it stops the
 * peer and removes the directory.
 *
 * @module
 */
import { type RunningPeer, startPeer } from "./server.ts";
import type { PeerOptions } from "./options.ts";

/** A started peer, its data directory, and its disposal. */
export type StartedPeer = RunningPeer & AsyncDisposable & { dir: string };

/** Starts a peer on `host` with no seeds and no replicas; `opts` adds or overrides. */
export async function startedPeer(
  host: string,
  opts: Partial<PeerOptions> = {},
): Promise<StartedPeer> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-peer-" });
  try {
    const peer = await startPeer({
      host,
      port: 0,
      httpPort: 0,
      dataDir: dir,
      name: "test",
      seeds: [],
      replicas: 0,
      ...opts,
    });
    return Object.assign(peer, {
      dir,
      async [Symbol.asyncDispose]() {
        await peer.stop();
        await peer.finished;
        await Deno.remove(dir, { recursive: true });
      },
    });
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

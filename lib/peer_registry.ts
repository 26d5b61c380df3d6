/**
 * A per-user registry of the peers running on this machine, so that the client
 * commands find a peer's control token with no flags, whatever `--data-dir` it was
 * given: a directory (mode 700, under the user's p2p data directory) with one JSON
 * file per running peer (mode 600) naming its process id, the URLs of its main HTTP
 * server and its token file. A peer writes its entry when it starts and removes it
 * when it stops; an entry whose process is gone (one killed, say) is ignored and
 * removed by the next reader (process liveness is read from `/proc`, so on systems
 * without it every entry counts as live and the newest one wins).
 *
 * @module
 */
import { z } from "zod";

/** One running peer. */
export const RegistryEntry = z.object({
  pid: z.number().int().positive(),
  peerId: z.string().regex(/^[0-9a-f]{40}$/),
  /** The base URLs of its main HTTP server (`http://127.0.0.1:5805`, …). */
  urls: z.array(z.string()).max(64),
  /** The file that holds its control token. */
  tokenFile: z.string(),
  /** When it started, ms since the epoch. */
  started: z.number(),
});
/** One running peer. */
export type RegistryEntry = z.infer<typeof RegistryEntry>;

/** The registry directory under a p2p data directory. */
export function registryDir(home: string): string {
  return `${home}/running`;
}

/** A URL's origin in one spelling (lower case host, no default port), or undefined. */
export function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` runs (true where that cannot be told). */
export function processAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return !hasProc();
    return true;
  }
}

let procMounted: boolean | undefined;
function hasProc(): boolean {
  if (procMounted === undefined) {
    try {
      Deno.statSync(`/proc/${Deno.pid}`);
      procMounted = true;
    } catch {
      procMounted = false;
    }
  }
  return procMounted;
}

/**
 * Writes `entry` to the registry in `dir` (made mode 700 when missing); resolves with
 * a function that removes it again (idempotent; it never throws).
 */
export async function registerPeer(dir: string, entry: RegistryEntry): Promise<() => void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const path = `${dir}/${entry.peerId}.json`;
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(entry) + "\n", { mode: 0o600 });
  await Deno.rename(tmp, path);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    // Only our own entry: a later start of the same peer may have replaced it.
    removeIfUnchanged(path, entry);
  };
}

/**
 * Removes the entry at `path` if it is still `entry`: a peer that started again
 * meanwhile has written a new one there, which must stay.
 */
function removeIfUnchanged(path: string, entry: RegistryEntry): void {
  try {
    const now = RegistryEntry.parse(JSON.parse(Deno.readTextFileSync(path)));
    if (now.pid === entry.pid && now.started === entry.started) Deno.removeSync(path);
  } catch {
    // Gone already, or replaced by a file that is not an entry.
  }
}

/** The live entries of the registry in `dir`, newest first; dead ones are removed. */
export async function liveEntries(dir: string): Promise<RegistryEntry[]> {
  const found: RegistryEntry[] = [];
  try {
    for await (const f of Deno.readDir(dir)) {
      if (!f.isFile || !f.name.endsWith(".json")) continue;
      const path = `${dir}/${f.name}`;
      let entry: RegistryEntry;
      try {
        entry = RegistryEntry.parse(JSON.parse(await Deno.readTextFile(path)));
      } catch {
        continue;
      }
      if (processAlive(entry.pid)) found.push(entry);
      else removeIfUnchanged(path, entry);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return found.sort((a, b) => b.started - a.started);
}

/** The newest live entry in `dir` one of whose URLs has the origin of `url`. */
export async function findPeer(dir: string, url: string): Promise<RegistryEntry | undefined> {
  const origin = originOf(url);
  if (!origin) return undefined;
  return (await liveEntries(dir)).find((e) => e.urls.some((u) => originOf(u) === origin));
}

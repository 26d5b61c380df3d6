/**
 * opentracker (the BitTorrent tracker in C, Debian package `opentracker`) as a
 * reference for the tracker's throughput: started on 127.0.0.1 with a port of its
 * own (TCP and UDP), chrooted to a temporary directory, with a whitelist that holds
 * the one torrent the benchmark announces (Debian builds it with a whitelist).
 *
 * @module
 */
import { which } from "./_bench.ts";

/** The torrent every announce names: 20 bytes, hex. */
export const INFO_HASH_HEX = "0102030405060708090a0b0c0d0e0f1011121314";

/** A running opentracker. `await using` stops it. */
export interface Opentracker extends AsyncDisposable {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url: string;
  pid: number;
  /** The announce path of peer `i` (its peer_id and port), asking for `numwant` peers. */
  announcePath(i: number, numwant: number): string;
  stop(): Promise<void>;
}

/** The opentracker binary on PATH, or null. */
export function findOpentracker(): Promise<string | null> {
  return which("opentracker");
}

/** Each byte of a hex string as `%XX`. */
function percentBytes(hex: string): string {
  return hex.replace(/../g, (b) => `%${b}`);
}

/** A free TCP port on 127.0.0.1 (opentracker cannot pick one and say which). */
function freePort(): number {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return l.addr.port;
}

/** Starts opentracker in `dir` and resolves once it accepts connections. */
export async function startOpentracker(
  binary: string,
  dir: string,
  signal?: AbortSignal,
): Promise<Opentracker> {
  // It drops to user `nobody` when started as root: the folder must be open to it.
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/whitelist`, `${INFO_HASH_HEX}\n`, { mode: 0o644 });
  const port = freePort();
  const child = new Deno.Command(binary, {
    args: ["-i", "127.0.0.1", "-p", String(port), "-P", String(port), "-d", dir, "-w", "whitelist"],
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal,
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // It exited already.
      }
      await child.status;
      await stderr;
    })();
  // It says nothing when it listens: connect until it answers (5 s at most).
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`opentracker did not listen on 127.0.0.1:${port}: ${err}\n${await stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const hash = percentBytes(INFO_HASH_HEX);
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    announcePath: (i, numwant) =>
      `/announce?info_hash=${hash}&peer_id=-BN0001-${String(i).padStart(12, "0")}` +
      `&port=${10_000 + i}&uploaded=0&downloaded=0&left=0&compact=1&numwant=${numwant}`,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

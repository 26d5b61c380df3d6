/**
 * Test helpers that run `p2p peer` as a real child process on a loopback address,
 * learn its peerId and ports from the line it prints once it listens, and drive its
 * control API. Each peer gets its own data directory.
 *
 * @module
 */
import { type P2pProcess, spawnP2p, type TrackerExit } from "./_tracker_process.ts";

/** What a peer prints once it listens: peerId, chunk address and HTTP URL. */
const LISTENING =
  /^p2p peer ([0-9a-f]{40}) "[^"]*" listening: chunks tcp:\/\/([\d.]+):(\d+), http (http:\/\/[\d.]+:\d+) \(/;

/** A running peer child process. */
export interface PeerProcess extends AsyncDisposable, P2pProcess {
  peerId: string;
  host: string;
  /** TCP chunk port. */
  port: number;
  /** Control API base URL. */
  http: string;
  dataDir: string;
  kill(): Promise<TrackerExit>;
}

/** Options of `spawnPeer()`. */
export interface SpawnPeerOptions {
  /** Data directory (kept across restarts when reused). */
  dataDir: string;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  name?: string;
  tracker?: string;
  seeds?: string[];
  replicas?: number;
  args?: string[];
}

/** Starts `p2p peer` on `host` with ports 0 and resolves once it listens. */
export async function spawnPeer(opts: SpawnPeerOptions): Promise<PeerProcess> {
  const host = opts.host ?? "127.0.0.1";
  const args = [
    "peer",
    "--host",
    host,
    "--port",
    "0",
    "--http-port",
    "0",
    "--data-dir",
    opts.dataDir,
    "--name",
    opts.name ?? "test",
    "--replicas",
    String(opts.replicas ?? 0),
    ...(opts.tracker ? ["--tracker", opts.tracker] : []),
    ...(opts.seeds ?? []).flatMap((s) => ["--peer", s]),
    ...(opts.args ?? []),
  ];
  const p = await spawnP2p(args, LISTENING, `peer on ${host}`);
  return {
    ...p,
    peerId: p.match[1],
    host: p.match[2],
    port: Number(p.match[3]),
    http: p.match[4],
    dataDir: opts.dataDir,
    kill: () => p.stop("SIGKILL"),
    [Symbol.asyncDispose]: async () => {
      await p.stop("SIGKILL");
    },
  };
}

/** Runs a client command (`put`, `get`, …) against a peer; returns its exit and output. */
export async function p2pClient(
  args: string[],
  stdin?: Uint8Array,
): Promise<{ code: number; stdout: string; stderr: string; bytes: Uint8Array }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args],
    cwd: new URL("../", import.meta.url),
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
    bytes: out.stdout,
  };
}

/**
 * Test helpers that run `p2p peer` as a real child process on a loopback address,
 * learn its peerId and ports from the line it prints once it listens, and drive its
 * control API. Each peer gets its own data directory.
 *
 * @module
 */
import { p2pCommand, type P2pProcess, spawnP2p, type TrackerExit } from "./_tracker_process.ts";
import type { ActivityRecord } from "../proto/activity.ts";
import { jsonLines } from "../proto/lines.ts";

/** What a peer prints once it listens: peerId, chunk address and HTTP URL. */
const LISTENING =
  /^p2p peer ([0-9a-f]{40}) "[^"]*" listening: chunks tcp:\/\/([\d.]+):(\d+), http (http:\/\/[\d.]+:\d+)[ ,]/;

/** A running peer child process. */
export interface PeerProcess extends AsyncDisposable, P2pProcess {
  peerId: string;
  host: string;
  /** TCP chunk port. */
  port: number;
  /** Control API base URL. */
  http: string;
  /** The control API's token (from the data directory). */
  token: string;
  /** `Authorization: Bearer <token>`, for a `fetch` of the control API. */
  auth: { authorization: string };
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
  /** Appended last: later options win, so these may override the ports. */
  args?: string[];
  /** Run inside this network namespace. */
  netns?: string;
  /** More environment variables (P2P_HOME, say). */
  env?: Record<string, string>;
  /** Gives up when it aborts before the peer listens (default: after 15 s). */
  signal?: AbortSignal;
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
    "--pingback-port",
    "0",
    "--app-port",
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
  const p = await spawnP2p(args, LISTENING, `peer on ${host}`, {
    netns: opts.netns,
    signal: opts.signal,
    env: opts.env,
  });
  const token = (await Deno.readTextFile(`${opts.dataDir}/control.token`)).trim();
  return {
    ...p,
    token,
    auth: { authorization: `Bearer ${token}` },
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

/**
 * Runs a client command (`put`, `get`, …) against a peer, inside `netns` when given,
 * with `env` added to its environment; returns its exit and output.
 * The command is killed after `timeoutMs` (default 30 s), so a hang fails the test.
 */
export async function p2pClient(
  args: string[],
  stdin?: Uint8Array,
  timeoutMs = 30_000,
  netns?: string,
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string; bytes: Uint8Array }> {
  const command = p2pCommand(args, netns);
  const child = new Deno.Command(command.cmd, {
    args: command.args,
    cwd: new URL("../", import.meta.url),
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...env },
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
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

/** A running `GET /_p2p/log?follow=1` stream of one peer: its records so far, and waits. */
export interface LogFollower extends AsyncDisposable {
  /** Every record seen: the newest 1000 at the start, then each new one. */
  readonly records: ActivityRecord[];
  /**
   * Resolves with the first record (already seen or still to come) that `match`
   * accepts; rejects after `timeoutMs` (default 15 s) or when the stream ends, naming
   * `what` and the last records seen.
   */
  waitFor(
    match: (r: ActivityRecord) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<ActivityRecord>;
}

/**
 * Follows a peer's activity log through its control API, so a test waits for what
 * the peer did (a connection, an exchange, an announcement) instead of sleeping.
 * `type` is passed on as the `type` filter (a dotted prefix).
 */
export async function followLog(
  peer: { http: string; host: string; auth: { authorization: string } },
  opts: { type?: string } = {},
): Promise<LogFollower> {
  const abort = new AbortController();
  const q = new URLSearchParams({ follow: "1", limit: "1000", ...opts });
  const res = await fetch(`${peer.http}/_p2p/log?${q}`, {
    headers: peer.auth,
    signal: abort.signal,
  });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`Cannot follow the log of ${peer.http}: HTTP ${res.status}`);
  }
  const records: ActivityRecord[] = [];
  const waiters = new Set<
    { match: (r: ActivityRecord) => boolean; settle(r?: ActivityRecord): void }
  >();
  let ended: string | undefined;
  const pump = (async () => {
    try {
      for await (const r of jsonLines<ActivityRecord>(res.body!)) {
        records.push(r);
        for (const w of [...waiters]) if (w.match(r)) w.settle(r);
      }
      ended = "the log stream ended";
    } catch (err) {
      ended = `the log stream failed: ${err}`;
    }
    for (const w of [...waiters]) w.settle();
  })();
  const tail = () =>
    records.slice(-12).map((r) => `${r.type} ${JSON.stringify(r).slice(0, 160)}`).join("\n  ");
  return {
    records,
    waitFor(match, what, timeoutMs = 15_000) {
      const seen = records.find(match);
      if (seen) return Promise.resolve(seen);
      const { promise, resolve, reject } = Promise.withResolvers<ActivityRecord>();
      const fail = (why: string) =>
        reject(
          new Error(`${peer.host}: waited for ${what}, but ${why}; last records:\n  ${tail()}`),
        );
      if (ended) {
        fail(ended);
        return promise;
      }
      const waiter = {
        match,
        settle: (r?: ActivityRecord) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (r) resolve(r);
          else fail(ended ?? "the log stream ended");
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        fail(`nothing came within ${timeoutMs} ms`);
      }, timeoutMs);
      waiters.add(waiter);
      return promise;
    },
    async [Symbol.asyncDispose]() {
      abort.abort();
      await pump;
    },
  };
}

/** One event of an NDJSON answer of the control API. */
export type ControlEvent = Record<string, unknown> & { type: string };

/**
 * Starts a download on a peer (`POST /_p2p/downloads/{id}`) and reads its NDJSON
 * events, awaiting `onEvent` for each one; resolves with the last event (`done` or
 * `error`). Rejects when the answer breaks off (the peer died).
 */
export async function controlDownload(
  peer: { http: string; auth: { authorization: string } },
  payloadId: string,
  onEvent: (e: ControlEvent) => void | Promise<void> = () => {},
  signal: AbortSignal = AbortSignal.timeout(30_000),
): Promise<ControlEvent> {
  const res = await fetch(`${peer.http}/_p2p/downloads/${payloadId}`, {
    method: "POST",
    headers: peer.auth,
    signal,
  });
  if (!res.ok || !res.body) {
    const text = await res.text();
    throw new Error(`POST /_p2p/downloads/${payloadId}: HTTP ${res.status} ${text}`);
  }
  let last: ControlEvent | undefined;
  for await (const e of jsonLines<ControlEvent>(res.body)) {
    last = e;
    await onEvent(last);
  }
  if (!last || (last.type !== "done" && last.type !== "error")) {
    throw new Error(`The download answer ended early; last event ${JSON.stringify(last)}`);
  }
  return last;
}

/** A peer's chunk address as `--peer` takes it. */
export function peerAddress(p: PeerProcess): string {
  return `${p.host}:${p.port}`;
}

/** Two linked peers from `spawnPair()`; disposing stops both and a's log follower. */
export interface PeerPair extends AsyncDisposable {
  a: PeerProcess;
  /** a's activity log, followed from before b started. */
  aLog: LogFollower;
  b: PeerProcess;
}

/**
 * Peer a on 127.0.0.2 and peer b on 127.0.0.3, which knows only a (`--peer`), in
 * `dir/a` and `dir/b`; resolves once a recorded b's link (`conn.open`). `aOpts` and
 * `bOpts` add to each one's options.
 */
export async function spawnPair(
  dir: string,
  aOpts: Partial<SpawnPeerOptions> = {},
  bOpts: Partial<SpawnPeerOptions> = {},
): Promise<PeerPair> {
  await using stack = new AsyncDisposableStack();
  const a = stack.use(await spawnPeer({ dataDir: `${dir}/a`, host: "127.0.0.2", ...aOpts }));
  const aLog = stack.use(await followLog(a));
  const b = stack.use(
    await spawnPeer({
      dataDir: `${dir}/b`,
      host: "127.0.0.3",
      seeds: [peerAddress(a)],
      ...bOpts,
    }),
  );
  await aLog.waitFor((r) => r.type === "conn.open" && r.peerId === b.peerId, "b to connect");
  const owned = stack.move();
  return { a, aLog, b, [Symbol.asyncDispose]: () => owned.disposeAsync() };
}

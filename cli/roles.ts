/**
 * The long-running roles as the CLI starts them: `p2p tracker` and `p2p peer` take
 * their parsed options, start the role, print what it listens on and stop it on
 * SIGINT/SIGTERM. Failures to start are one-line `RunError`s (a busy port named).
 *
 * @module
 */
import { defaultDataDir, dirname, type PeerAddress } from "./options.ts";
import { startPeer } from "../peer/server.ts";
import { NETWORK_KEY_ENV, resolveNetworkKey } from "../lib/network_key_file.ts";
import { networkName } from "../proto/network_key.ts";
import { startTracker } from "../tracker/server.ts";
import { VERSION } from "../version.ts";
import { errorMessage, P2pError } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";
import { busyMessage, busyPorts } from "./ports.ts";
import { startupLines, trackerWatch } from "./startup.ts";
import { peerSearchBackend } from "./search_options.ts";
import type { SearchBackend } from "../peer/search/backend.ts";

/** Options of `p2p tracker`, as parsed. */
export interface TrackerCliOptions {
  host: string;
  port: number;
  db?: string;
  log?: string;
  peerTtl: number;
  maxUpload: number;
  networkKeyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  rateLimit: number;
  maxConnsPerAddress: number;
  headTimeout: number;
}

/** Reads `--tls-cert` and `--tls-key` (both or neither). */
async function readTls(
  cert: string | undefined,
  key: string | undefined,
): Promise<{ cert: string; key: string } | undefined> {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new RunError("tls_options", "--tls-cert and --tls-key go together: give both or neither");
  }
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new RunError(
        "tls_options",
        `cannot read the TLS ${what} '${path}': ${errorMessage(err)}`,
      );
    }
  };
  return { cert: await read(cert, "certificate"), key: await read(key, "key") };
}

/** The start-up line's words on membership. */
async function membershipLine(key: Uint8Array | undefined, source: string): Promise<string> {
  if (!key) {
    return "network: OPEN, any device on the LAN may join (make a key with p2p keygen, " +
      "then use --network-key-file)";
  }
  return `network: protected, key ${await networkName(key)} (from ${
    source === "file" ? "--network-key-file" : NETWORK_KEY_ENV
  })`;
}

export async function runTracker(opts: TrackerCliOptions): Promise<void> {
  const db = opts.db ?? `${defaultDataDir()}/tracker.kv`;
  const log = opts.log ?? `${dirname(db)}/tracker-activity.jsonl`;
  await Deno.mkdir(dirname(db), { recursive: true });
  await Deno.mkdir(dirname(log), { recursive: true });
  const warn = (m: string) => console.error(`p2p tracker: warning: ${m}`);
  const network = await resolveNetworkKey(opts.networkKeyFile, undefined, warn);
  const tls = await readTls(opts.tlsCert, opts.tlsKey);
  let tracker;
  try {
    tracker = await startTracker({
      host: opts.host,
      port: opts.port,
      db,
      log,
      peerTtl: opts.peerTtl,
      maxUpload: opts.maxUpload,
      networkKey: network.key,
      tls,
      limits: {
        requestsPerSecond: opts.rateLimit,
        requestBurst: opts.rateLimit * 2,
        connectionsPerAddress: opts.maxConnsPerAddress,
        headTimeoutMs: opts.headTimeout * 1000,
      },
    });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new RunError(
        "address_in_use",
        `cannot listen on ${hostPort(opts.host, opts.port)}: the address is in use`,
        { cause: err },
      );
    }
    throw err;
  }
  console.log(`p2p tracker ${VERSION} listening on ${tracker.url} (db ${db}, log ${log})`);
  console.log(`p2p tracker: ${await membershipLine(network.key, network.source)}`);
  await runUntilStopped("p2p tracker", tracker);
}

/**
 * Waits for a started role to finish, stopping it on SIGINT or SIGTERM: "stopping"
 * is printed once, and a second signal quits at once (exit status 130).
 */
async function runUntilStopped(
  who: string,
  role: { stop(): unknown; finished: Promise<unknown> },
): Promise<void> {
  let stopping = false;
  const onSignal = () => {
    if (stopping) {
      console.log(`${who}: stopped at once`);
      Deno.exit(130);
    }
    stopping = true;
    console.log(`${who}: stopping`);
    role.stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await role.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  console.log(`${who}: stopped`);
}

/** Options of `p2p peer`, as parsed. */
export interface PeerCliOptions {
  host: string;
  port: number;
  tracker?: string;
  peer?: PeerAddress[];
  dataDir?: string;
  name?: string;
  replicas: number;
  httpPort: number;
  pingbackPort: number;
  appPort: number;
  app?: string;
  verbose?: boolean;
  maxUploadRate?: number;
  scan?: string | true;
  scanInterval: number;
  networkKeyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  maxStore?: number;
  insecurePlaintext?: boolean;
  rateLimit: number;
  searchBackend?: SearchBackend["kind"];
  searchUrl?: string;
}

export async function runPeer(opts: PeerCliOptions): Promise<void> {
  const dataDir = opts.dataDir ??
    `${defaultDataDir()}/peer-${opts.host.replace(/[^\w.-]/g, "_")}-${opts.port}`;
  const search = peerSearchBackend(opts.searchBackend, opts.searchUrl);
  const warn = (m: string) => console.error(`p2p peer: warning: ${m}`);
  const network = await resolveNetworkKey(opts.networkKeyFile, undefined, warn);
  const tls = await readTls(opts.tlsCert, opts.tlsKey);
  let peer;
  try {
    peer = await startPeer({
      host: opts.host,
      port: opts.port,
      httpPort: opts.httpPort,
      pingbackPort: opts.pingbackPort,
      appPort: opts.appPort,
      app: opts.app,
      scan: opts.scan === true ? "" : opts.scan,
      scanIntervalMs: opts.scanInterval * 1000,
      dataDir,
      name: opts.name ?? Deno.hostname(),
      tracker: opts.tracker,
      seeds: opts.peer ?? [],
      replicas: opts.replicas,
      echo: opts.verbose,
      maxUploadRate: opts.maxUploadRate,
      networkKey: network.key,
      tls,
      maxStore: opts.maxStore,
      plaintextLoopback: opts.insecurePlaintext,
      rateLimit: opts.rateLimit,
      search,
    });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      const ports: [string, number][] = [
        ["--port", opts.port],
        ["--http-port", opts.httpPort],
        ["--pingback-port", opts.pingbackPort],
        ["--app-port", opts.appPort],
      ];
      const busy = busyPorts(opts.host, ports);
      throw new RunError("address_in_use", busyMessage(opts.host, busy, ports), { cause: err });
    }
    throw err;
  }
  const { node } = peer;
  const lines = startupLines({
    peerId: node.identity.peerId,
    name: node.opts.name,
    host: opts.host,
    chunkPort: node.chunkPort,
    ...await node.linkTls.then((port) => port === undefined ? {} : { linkTlsPort: port }),
    httpUrl: peer.httpUrl,
    ...(node.pingbackPort === undefined ? {} : { pingbackPort: node.pingbackPort }),
    ...(peer.appUrl === undefined || opts.app ? {} : { appUrl: peer.appUrl }),
    dataDir,
    loginUrl: peer.loginUrl,
    membership: await membershipLine(network.key, network.source),
    ...(opts.tracker ? { tracker: opts.tracker } : {}),
  });
  for (const line of lines) console.log(line);
  // Then the tracker's first contact, and each loss and return.
  const watch = trackerWatch((line) => console.log(line));
  const tracker = node.status().tracker;
  if (tracker?.ok) watch({ id: 0, ts: "", type: "tracker.register", url: tracker.url });
  const unfollow = node.log.follow(watch);
  peer.finished.finally(unfollow).catch(() => undefined);
  await runUntilStopped("p2p peer", peer);
}

/** A failure at run time that deserves one line, not a stack trace. */
export class RunError extends P2pError {}

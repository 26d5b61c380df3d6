/**
 * LAN discovery: list the devices of a range with npm:local-devices (it opens a TCP
 * connection to each address so the kernel resolves it, then reads the ARP table),
 * then ask each device's pingback port whether a p2p peer lives there. An answer
 * counts only when it parses against `PingbackAnswer`, echoes our fresh nonce, its
 * public key hashes to its peerId and its signature verifies.
 *
 * The probe is a minimal HTTP/1.0 GET over `Deno.connect`, not `fetch`: a scan must
 * never go through an HTTP proxy from the environment, must read at most
 * `MAX_PINGBACK_BYTES`, and must give up after a short timeout. Its answer is read
 * with the relay's HTTP/1.1 codec (`lib/http_relay/`).
 *
 * @module
 */
import findLocalDevices from "local-devices";
import {
  DEFAULT_PINGBACK_PORT,
  formatRange,
  inRange,
  type Ipv4Range,
  MAX_PINGBACK_BYTES,
  numberToIpv4,
  PINGBACK_ANSWER_LABEL,
  PINGBACK_PROOF_LABEL,
  PingbackAnswer,
  pingbackSignedBytes,
  ProtectedAnswer,
  type ScanProgress,
} from "../proto/discovery.ts";
import { isOpenNetwork, keyProof, verifyKeyProof } from "../proto/network_key.ts";
import { fromBase64Url, toBase64Url } from "../proto/ids.ts";
import { PROTOCOL_VERSION } from "../proto/frame.ts";
import { errorMessage } from "../proto/errors.ts";
import {
  decodeChunked,
  headEnd,
  HttpParseError,
  parseResponseHead,
  responseFraming,
} from "../lib/http_relay/mod.ts";
import { hostPort } from "../lib/net_addr.ts";
import { peerIdFromPublicKey, verifySignature } from "./identity.ts";

/** Where to probe: an address and its pingback port. */
export interface Candidate {
  host: string;
  port: number;
  /** The peerId expected there (a known peer), if any. */
  peerId?: string;
}

/** The outcome of probing one candidate. */
export type ProbeResult =
  | { ok: true; host: string; answer: PingbackAnswer; rttMs: number }
  | { ok: false; host: string; reason: string; answered: boolean };

/** Options of `probePingback()`. */
export interface ProbeOptions {
  /** Whole probe (connect, request, answer) must end within this (default 1500 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The network key: proven in the request, and required of the answer. */
  networkKey?: Uint8Array;
}

/**
 * Asks `host:port` whether it is a p2p peer, with a fresh nonce, and verifies the
 * answer. Never throws: every failure is a `{ ok: false, reason }`; `answered` tells
 * a device that spoke HTTP (but is not a peer) from one that did not answer.
 */
export async function probePingback(
  host: string,
  port: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(18)));
  const key = opts.networkKey && !isOpenNetwork(opts.networkKey) ? opts.networkKey : undefined;
  const proof = key
    ? `&proof=${toBase64Url(await keyProof(key, PINGBACK_PROOF_LABEL, [nonce]))}`
    : "";
  const started = performance.now();
  let res: HttpAnswer;
  try {
    res = await httpGet(host, port, `/?nonce=${nonce}${proof}`, {
      timeoutMs: opts.timeoutMs ?? 1500,
      maxBytes: MAX_PINGBACK_BYTES,
      signal: opts.signal,
    });
  } catch (err) {
    return { ok: false, host, answered: false, reason: errorMessage(err) };
  }
  const rttMs = Math.round((performance.now() - started) * 10) / 10;
  const no = (reason: string): ProbeResult => ({ ok: false, host, answered: true, reason });
  if (res.status !== 200) return no(`HTTP ${res.status} from the pingback port: not a p2p peer`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(res.body));
  } catch {
    return no("the pingback port answered something that is not JSON: not a p2p peer");
  }
  if (ProtectedAnswer.safeParse(json).success) {
    return no("a protected p2p network is here, with another key than ours");
  }
  const parsed = PingbackAnswer.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return no(
      `the answer is not a p2p pingback answer (${
        issue.path.join(".") || "body"
      }: ${issue.message})`,
    );
  }
  const answer = parsed.data;
  if (answer.protocol !== PROTOCOL_VERSION) {
    return no(`peer ${answer.peerId} speaks protocol ${answer.protocol}, not ${PROTOCOL_VERSION}`);
  }
  if (answer.nonce !== nonce || answer.signature === undefined) {
    return no(`peer ${answer.peerId} did not sign our nonce`);
  }
  if (await peerIdFromPublicKey(fromBase64Url(answer.publicKey)) !== answer.peerId) {
    return no(`peerId ${answer.peerId} does not belong to the public key it sent`);
  }
  const ok = await verifySignature(
    answer.publicKey,
    pingbackSignedBytes(nonce, answer.peerId, answer.ports),
    fromBase64Url(answer.signature),
  );
  if (!ok) return no(`the signature of peer ${answer.peerId} does not verify`);
  if (key) {
    const fields = [nonce, answer.peerId, answer.publicKey];
    const member = answer.keyProof !== undefined &&
      await verifyKeyProof(key, PINGBACK_ANSWER_LABEL, fields, fromBase64Url(answer.keyProof));
    if (!member) {
      return no(`peer ${answer.peerId} is not a member of this network (no proof of our key)`);
    }
  }
  return { ok: true, host, answer, rttMs };
}

/** A device in a range, as the ARP table shows it. */
export interface Device {
  ip: string;
  mac: string;
}

let listing: Promise<unknown> = Promise.resolve();

/**
 * The devices in `range` that answer ARP, by npm:local-devices: it connects to TCP
 * port 80 of every address of the range (1 s timeout each, all at once) so the
 * kernel resolves them, then runs `arp -an` (no name lookups) and keeps the
 * addresses of the range. Runs are serialized: the package keeps module state.
 */
export function listDevices(range: Ipv4Range): Promise<Device[]> {
  const run = listing.then(async () => {
    const found = await findLocalDevices({ address: formatRange(range), skipNameResolution: true });
    if (!Array.isArray(found)) {
      throw new Error(`local-devices could not list '${formatRange(range)}': ${String(found)}`);
    }
    return found.filter((d) => inRange(range, d.ip)).map((d) => ({ ip: d.ip, mac: d.mac }));
  });
  listing = run.catch(() => undefined);
  return run.catch((err) => {
    const msg = String((err as Error)?.message ?? err);
    if (/arp: (not found|command not found)|ENOENT/.test(msg)) {
      throw new Error("Cannot list LAN devices: the `arp` command (package net-tools) is missing");
    }
    throw new Error(`Cannot list LAN devices in ${formatRange(range)}: ${msg}`);
  });
}

/** Options of `scan()`. */
export interface ScanOptions {
  ranges: Ipv4Range[];
  /** Peers already known: probed too, wherever they are. */
  known: Candidate[];
  /** This peer's id: its own answer is dropped. */
  self: string;
  /** Pingback port probed on devices (default 5800). */
  pingbackPort?: number;
  /** Probes at once (default 32). */
  concurrency?: number;
  /** Per probe (default 1500 ms). */
  timeoutMs?: number;
  /** Lists devices; defaults to `listDevices` (npm:local-devices). */
  devices?: (range: Ipv4Range) => Promise<Device[]>;
  signal?: AbortSignal;
  /** The network key, proven to each device and required of its answer. */
  networkKey?: Uint8Array;
  /** Told once the devices are listed, then after each probe ends. */
  onProgress?: (p: ScanProgress) => void;
}

/** What `scan()` saw. */
export interface ScanResult {
  devices: number;
  probed: number;
  /** Verified peers, one per peerId (the first address that answered). */
  found: Extract<ProbeResult, { ok: true }>[];
  /** Devices that are not verified peers, and why (no answer, wrong answer, bad signature). */
  rejected: { address: string; reason: string }[];
  /** Known peers that did not answer at their address. */
  silent: { peerId: string; address: string; reason: string }[];
  devicesError?: string;
}

/** Lists the devices of the ranges, probes them and the known peers, and sorts the answers. */
export async function scan(opts: ScanOptions): Promise<ScanResult> {
  const port = opts.pingbackPort ?? DEFAULT_PINGBACK_PORT;
  const list = opts.devices ?? listDevices;
  const candidates = new Map<string, Candidate>();
  let devices = 0;
  let devicesError: string | undefined;
  for (const range of opts.ranges) {
    try {
      for (const d of await list(range)) {
        devices++;
        candidates.set(`${d.ip}:${port}`, { host: d.ip, port });
      }
    } catch (err) {
      devicesError = (err as Error).message;
    }
  }
  for (const k of opts.known) {
    const key = `${k.host}:${k.port}`;
    candidates.set(key, { ...candidates.get(key), ...k });
  }
  const all = [...candidates.values()];
  let probed = 0;
  let verified = 0;
  const tell = (phase: ScanProgress["phase"]) =>
    opts.onProgress?.({ phase, devices, probed, total: all.length, found: verified });
  tell("devices");
  const results = await mapLimit(
    all,
    opts.concurrency ?? 32,
    async (c) => {
      const r = await probePingback(c.host, c.port, {
        timeoutMs: opts.timeoutMs,
        signal: opts.signal,
        networkKey: opts.networkKey,
      });
      probed++;
      if (r.ok && r.answer.peerId !== opts.self) verified++;
      tell("probing");
      return r;
    },
  );
  const out: ScanResult = { devices, probed: all.length, found: [], rejected: [], silent: [] };
  if (devicesError) out.devicesError = devicesError;
  const seen = new Set<string>();
  results.forEach((r, i) => {
    const c = all[i];
    const address = `${c.host}:${c.port}`;
    if (r.ok) {
      if (r.answer.peerId === opts.self || seen.has(r.answer.peerId)) return;
      seen.add(r.answer.peerId);
      out.found.push(r);
    } else if (!c.peerId) {
      out.rejected.push({ address, reason: r.reason });
    }
    if (c.peerId && !(r.ok && r.answer.peerId === c.peerId)) {
      out.silent.push({
        peerId: c.peerId,
        address,
        reason: r.ok ? `peer ${r.answer.peerId} answers there now` : r.reason,
      });
    }
  });
  // A known peer that answered elsewhere (it moved) is not silent.
  out.silent = out.silent.filter((s) => !seen.has(s.peerId));
  return out;
}

/** Runs `fn` over `items` with at most `limit` at once; results in input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The status and body of a small HTTP answer. */
interface HttpAnswer {
  status: number;
  body: Uint8Array;
}

/** Room for the answer's head besides its body, in bytes. */
const HEAD_ROOM = 8192;

/**
 * A bounded HTTP/1.0 GET: connects, sends the request, reads the answer until the
 * server closes, at most `maxBytes` of body (plus 8 KiB of head). Rejects with a
 * one-line reason on refusal, timeout, oversize or a malformed answer.
 */
async function httpGet(
  host: string,
  port: number,
  path: string,
  opts: { timeoutMs: number; maxBytes: number; signal?: AbortSignal },
): Promise<HttpAnswer> {
  const signal = AbortSignal.any([
    AbortSignal.timeout(opts.timeoutMs),
    ...(opts.signal ? [opts.signal] : []),
  ]);
  let conn: Deno.TcpConn | undefined;
  const onAbort = () => conn?.close();
  signal.addEventListener("abort", onAbort, { once: true });
  const limit = opts.maxBytes + HEAD_ROOM;
  try {
    conn = await Deno.connect({ hostname: host, port, signal });
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.0\r\nHost: ${
          hostPort(host, port)
        }\r\nAccept: application/json\r\nUser-Agent: p2p-discovery\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(limit + 1);
    let len = 0;
    while (len < buf.length) {
      const n = await conn.read(buf.subarray(len));
      if (n === null) break;
      len += n;
    }
    if (len > limit) throw new Error(`answer longer than ${limit} bytes`);
    return parseHttpAnswer(buf.subarray(0, len));
  } catch (err) {
    if (signal.aborted) {
      throw new Error(
        opts.signal?.aborted ? "scan aborted" : `no answer within ${opts.timeoutMs} ms`,
      );
    }
    if (err instanceof Deno.errors.ConnectionRefused) throw new Error("connection refused");
    throw new Error(errorMessage(err));
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      conn?.close();
    } catch {
      // already closed by the abort
    }
  }
}

/**
 * Splits a whole HTTP/1.x answer into status and body with the relay's codec: the
 * head parsed strictly, the body as its framing delimits it (a chunked one
 * decoded, a counted one cut at its length, any other up to the end).
 */
function parseHttpAnswer(raw: Uint8Array): HttpAnswer {
  const end = headEnd(raw, raw.length);
  if (end < 0) throw new Error("not an HTTP answer (no end of headers)");
  try {
    const head = parseResponseHead(raw.subarray(0, end));
    const framing = responseFraming(head, "GET");
    const rest = raw.subarray(end);
    const body = framing.kind === "none"
      ? rest.subarray(0, 0)
      : framing.kind === "length"
      ? rest.subarray(0, framing.length)
      : framing.kind === "chunked"
      ? decodeChunked(rest)
      : rest;
    return { status: head.status, body };
  } catch (err) {
    if (err instanceof HttpParseError) throw new Error(`not an HTTP answer (${err.message})`);
    throw err;
  }
}

/** Every address of a range, for tests and small sweeps. */
export function rangeAddresses(r: Ipv4Range): string[] {
  const out: string[] = [];
  for (let n = r.first; n <= r.last; n++) out.push(numberToIpv4(n));
  return out;
}

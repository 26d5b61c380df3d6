/**
 * LAN discovery runs: `discover(range)` scans a range (none given: the subnets of
 * this machine's interfaces) with `discovery.ts`'s `scan()`, probing the devices'
 * pingback ports and those of the peers already known, and records what it learns:
 * verified peers are added or updated (source `scan`), known peers that stay silent
 * are marked stale. A scan's answer is signed over our nonce, but it comes from the
 * pingback port: the address it teaches is learned, and used once a handshake on the
 * chunk port there proved the id (`peer_table.ts`); `meet` dials each found peer at
 * once so that it is. One run at a time; `--scan` runs it at start and every period.
 *
 * @module
 */
import { scan, type ScanOptions, type ScanResult } from "./discovery.ts";
import type { PeerLog } from "./activity.ts";
import type { KnownPeer, PeerTable } from "./peer_table.ts";
import {
  DEFAULT_PINGBACK_PORT,
  type DiscoveredPeer,
  type DiscoveryReport,
  formatRange,
  interfaceRanges,
  parseRange,
  type ScanProgress,
} from "../proto/discovery.ts";
import { InvalidInputError } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";

/** What LAN scans need of their neighbours. */
export interface LanScanDeps {
  /** This peer's id: its own answer is dropped. */
  self: string;
  table: Pick<PeerTable, "list" | "get" | "upsert" | "seen" | "failed" | "unproven">;
  log: Pick<PeerLog, "record">;
  /** Pingback port probed on devices (default 5800). */
  pingbackPort?: number;
  /** Aborts when the peer stops: a running scan ends. */
  signal: AbortSignal;
  /** The network key: proven to each device's pingback port, required of its answer. */
  networkKey?: Uint8Array;
  /**
   * Dials a peer found at a learned address, so its handshake proves it there (and
   * asks it for its record): `PeerExchange.meet()`. Awaited for all found at once.
   */
  meet?: (peer: KnownPeer) => Promise<void>;
  /** Runs one scan; defaults to `discovery.ts`'s `scan()` (tests fake it). */
  scan?: (opts: ScanOptions) => Promise<ScanResult>;
  /** This machine's interfaces; defaults to `Deno.networkInterfaces()` (tests fake it). */
  interfaces?: () => Deno.NetworkInterfaceInfo[];
}

/** Runs LAN discovery, one scan at a time. */
export class LanScan {
  readonly #deps: LanScanDeps;
  #running: Promise<unknown> = Promise.resolve();

  constructor(deps: LanScanDeps) {
    this.#deps = deps;
  }

  /**
   * Scans a range (CIDR or FIRST-LAST; none: this machine's subnets) once the scan
   * before it is done, and records what it finds. `InvalidInputError` when there is
   * nothing to scan; `RangeError` for a malformed range.
   */
  discover(
    rangeText?: string,
    onProgress?: (p: ScanProgress) => void,
  ): Promise<DiscoveryReport> {
    const run = this.#running.then(() => this.#discover(rangeText, onProgress));
    this.#running = run.catch(() => undefined);
    return run;
  }

  async #discover(
    rangeText?: string,
    onProgress?: (p: ScanProgress) => void,
  ): Promise<DiscoveryReport> {
    const { table, log } = this.#deps;
    const started = performance.now();
    const ranges = rangeText !== undefined
      ? [parseRange(rangeText)]
      : interfaceRanges((this.#deps.interfaces ?? Deno.networkInterfaces)());
    if (ranges.length === 0) {
      throw new InvalidInputError(
        "nothing_to_scan",
        "Nothing to scan: no range given and no IPv4 interface other than loopback",
      );
    }
    const rangeNames = ranges.map(formatRange);
    log.record("discover.start", { ranges: rangeNames });
    const known = table.list().flatMap((p) =>
      p.ports.pingback ? [{ host: p.host, port: p.ports.pingback, peerId: p.peerId }] : []
    );
    const result = await (this.#deps.scan ?? scan)({
      ranges,
      known,
      self: this.#deps.self,
      pingbackPort: this.#deps.pingbackPort ?? DEFAULT_PINGBACK_PORT,
      signal: this.#deps.signal,
      ...(this.#deps.networkKey ? { networkKey: this.#deps.networkKey } : {}),
      ...(onProgress ? { onProgress } : {}),
    });
    const found: DiscoveredPeer[] = [];
    for (const r of result.found) {
      const a = r.answer;
      const old = table.get(a.peerId);
      const change = !old
        ? "new"
        : old.host !== r.host || old.ports.chunk !== a.ports.chunk
        ? "moved"
        : "known";
      await table.upsert(
        { peerId: a.peerId, host: r.host, ports: a.ports, name: a.name, publicKey: a.publicKey },
        "scan",
      );
      await table.seen(a.peerId, r.rttMs);
      found.push({
        peerId: a.peerId,
        name: a.name,
        host: r.host,
        ports: a.ports,
        rttMs: r.rttMs,
        change,
      });
      log.record("discover.peer", {
        peerId: a.peerId,
        address: hostPort(r.host, a.ports.chunk),
        change,
        rttMs: r.rttMs,
      });
    }
    // Found at an address not proven yet: a handshake there proves it, all at once.
    const meet = this.#deps.meet;
    if (meet) {
      const ids = new Set(found.map((f) => f.peerId));
      await Promise.all(table.unproven().filter((p) => ids.has(p.peerId)).map(meet));
    }
    for (const r of result.rejected) log.record("discover.reject", r);
    for (const s of result.silent) {
      await table.failed(s.peerId);
      log.record("discover.stale", s);
    }
    const report: DiscoveryReport = {
      ranges: rangeNames,
      devices: result.devices,
      probed: result.probed,
      found,
      rejected: result.rejected,
      stale: result.silent,
      ...(result.devicesError ? { devicesError: result.devicesError } : {}),
      seconds: Math.round(performance.now() - started) / 1000,
    };
    const { devices, probed, seconds, devicesError } = report;
    log.record("discover.done", {
      ranges: rangeNames,
      devices,
      probed,
      found: found.length,
      rejected: report.rejected.length,
      stale: report.stale.length,
      seconds,
      ...(devicesError ? { devicesError } : {}),
    });
    return report;
  }
}

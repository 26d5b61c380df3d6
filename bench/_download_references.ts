/**
 * `p2p get -o` against the native downloaders in the same run (issue 13): the same
 * payload written once into a file the reference servers read, then fetched by
 * curl from one nginx (against the 1-source `get -o`), by aria2c over BitTorrent from
 * 3 aria2c seeders with opentracker, and by aria2c from 3 nginx servers with a
 * metalink (both against the 3-source `get -o`). Each gives its own MiB/s figure and
 * a ratio figure, reference time / `p2p get -o` time (so above 1 is p2p faster), with
 * the target. A reference whose tool is missing, or that failed, gives one
 * note line and no figures.
 *
 * @module
 */
import { type BenchContext, type Figure, rate, settlePages } from "./_bench.ts";
import { pseudoRandomStream } from "./_bench_peer.ts";
import { aria2Reference } from "./_aria2_reference.ts";
import { bittorrentReference } from "./_bittorrent_reference.ts";
import { curlReference } from "./_curl_reference.ts";
import { type ReferenceTime, writePayloadFile } from "./_reference_kit.ts";
import { getScenario } from "./_single_write.ts";

/** The machines' roles: where the sources are and where the downloader is. */
export interface ReferenceHosts {
  /** The three source peers' addresses; the first is the 1-source one. */
  sources: string[];
  downloader: string;
}

/** Median whole-command seconds of `p2p get ID -o FILE`, per source count. */
export interface GetTimes {
  oneSource: number;
  threeSources: number;
  /** Median seconds of the raw write of a new file of as many bytes, beside them. */
  rawWrite: number;
}

/** One reference, its target as a ratio, and which `get -o` it is compared with. */
interface Comparison {
  /** Short, stable: the figure names are built from it. */
  name: string;
  reference: string;
  sources: 1 | 3;
  min: number;
  time(): Promise<ReferenceTime>;
}

/**
 * Runs every reference for a payload of `bytes` (the same bytes `peer_download`
 * put: `pseudoRandomStream(bytes, bytes >>> 20)`) and compares it with `p2p`.
 */
export async function compareWithReferences(
  ctx: BenchContext,
  label: string,
  bytes: number,
  hosts: ReferenceHosts,
  p2p: GetTimes,
): Promise<{ figures: Figure[]; notes: string[] }> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  const payload = await writePayloadFile(
    "payload.bin",
    pseudoRandomStream(bytes, bytes >>> 20),
    ctx.signal,
  );
  const comparisons: Comparison[] = [
    {
      name: "curl from nginx",
      reference: `curl from 1 nginx on the source's address, ${label} to a new file`,
      sources: 1,
      min: 1,
      time: () => curlReference(ctx, label, payload, hosts.sources[0]),
    },
    {
      name: "aria2c BitTorrent",
      reference: `aria2c over BitTorrent from 3 aria2c seeders, opentracker, 1 MiB pieces`,
      sources: 3,
      min: 2,
      time: () =>
        bittorrentReference(ctx, label, payload, {
          seeders: hosts.sources,
          leechers: [hosts.downloader],
        }),
    },
    {
      name: "aria2c metalink",
      reference: `aria2c from 3 nginx servers, metalink with SHA-256 per 1 MiB piece`,
      sources: 3,
      min: 1.5,
      time: () => aria2Reference(ctx, label, payload, hosts.sources),
    },
  ];
  try {
    for (const c of comparisons) {
      // As before each p2p step: the memory the reference writes into is not fresh from a free.
      await settlePages(ctx.signal);
      const ref = await c.time();
      if (ref.seconds === undefined) {
        notes.push(ref.note ?? `${label}: ${c.name}: no time`);
        continue;
      }
      const mine = c.sources === 1 ? p2p.oneSource : p2p.threeSources;
      const from = `${label} from ${c.sources} source${c.sources === 1 ? "" : "s"}`;
      const cpu = ref.cpuSeconds == null ? "" : `; CPU ${ref.cpuSeconds.toFixed(2)} s`;
      ctx.log(`${from}: ${c.name} ${ref.seconds.toFixed(2)} s, p2p get -o ${mine.toFixed(2)} s`);
      figures.push(
        {
          name: `reference: ${c.name}, ${from}`,
          value: rate(bytes, ref.seconds),
          unit: "MiB/s",
          note: `${ref.seconds.toFixed(2)} s, copy verified after${cpu}`,
        },
        {
          name: `${from}: p2p get -o vs ${c.name}`,
          value: ref.seconds / mine,
          unit: "x",
          // No command that writes the file can beat the raw write of it: that bounds the ratio.
          note: `${c.name} ${ref.seconds.toFixed(2)} s / p2p get -o FILE ${
            mine.toFixed(2)
          } s (median); bound: a get -o as fast as the raw write (${
            p2p.rawWrite.toFixed(2)
          } s) would be ${(ref.seconds / p2p.rawWrite).toFixed(2)}x, this one is ${
            (100 * p2p.rawWrite / mine).toFixed(0)
          } % of that`,
          target: { min: c.min },
          reference: c.reference,
          scenario: getScenario(label, c.sources),
        },
      );
    }
  } finally {
    await Deno.remove(payload.dir, { recursive: true }).catch(() => {});
  }
  return { figures, notes };
}

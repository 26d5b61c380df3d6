/**
 * A reference for `peer_download`: aria2c, a mature native multi-source downloader,
 * fetching the same size from three nginx servers on the same loopback addresses as
 * the source peers, into a file on the same disk, verifying SHA-256 per 1 MiB piece
 * (a metalink with piece hashes, as a p2p manifest has). What it reaches shows how
 * much of a shortfall belongs to this machine rather than to the peer.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { errorMessage } from "../proto/errors.ts";
import {
  type BenchContext,
  type Figure,
  MiB,
  processCpuSeconds,
  rate,
  startNginx,
  which,
} from "./_bench.ts";

/** What `aria2Reference()` needs. */
export interface Aria2ReferenceOptions {
  /** Size label, e.g. "1 GiB". */
  label: string;
  /** Bytes to serve and fetch. */
  bytes: number;
  /** Loopback addresses for the three nginx servers. */
  hosts: string[];
  /** The payload's bytes, streamed (never held whole). */
  payload: () => AsyncIterable<Uint8Array>;
}

/**
 * Serves a file from nginx on each of `hosts` and times aria2c fetching it from all
 * of them, verified. Returns the figure, or a note saying why there is none.
 */
export async function aria2Reference(
  ctx: BenchContext,
  opts: Aria2ReferenceOptions,
): Promise<{ figure?: Figure; note?: string }> {
  const [aria2c, nginx] = await Promise.all([which("aria2c"), which("nginx")]);
  if (!aria2c || !nginx) {
    const missing = [!aria2c && "aria2", !nginx && "nginx"].filter(Boolean).join(" and ");
    return {
      note:
        `${opts.label}: no aria2c reference: ${missing} not installed (apt-get install ${missing})`,
    };
  }
  // Its own directory, readable by nginx's workers (which run as another user when
  // nginx starts as root), removed at the end.
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-aria2-" });
  try {
    await Deno.chmod(dir, 0o755);
    return await run(ctx, opts, dir, aria2c, nginx);
  } catch (err) {
    ctx.signal.throwIfAborted();
    return { note: `${opts.label}: aria2c reference failed: ${errorMessage(err)}` };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function run(
  ctx: BenchContext,
  opts: Aria2ReferenceOptions,
  dir: string,
  aria2c: string,
  nginx: string,
): Promise<{ figure?: Figure; note?: string }> {
  const { label, bytes, hosts } = opts;
  const root = `${dir}/www`;
  const out = `${dir}/aria2-out`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.mkdir(out, { recursive: true });

  // The file and its piece hashes, in one pass.
  const whole = createHash("sha256");
  const pieces: string[] = [];
  {
    using file = await Deno.open(`${root}/payload.bin`, { write: true, createNew: true });
    for await (const block of opts.payload()) {
      ctx.signal.throwIfAborted();
      whole.update(block);
      for (let off = 0; off < block.length; off += MiB) {
        pieces.push(createHash("sha256").update(block.subarray(off, off + MiB)).digest("hex"));
      }
      for (let off = 0; off < block.length;) off += await file.write(block.subarray(off));
    }
  }
  const probe = Deno.listen({ hostname: hosts[0], port: 0 });
  const port = probe.addr.port;
  probe.close();
  const urls = hosts.map((h) => `http://${h}:${port}/payload.bin`);
  await Deno.writeTextFile(
    `${dir}/payload.meta4`,
    `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
<file name="payload.bin">
<size>${bytes}</size>
<hash type="sha-256">${whole.digest("hex")}</hash>
<pieces type="sha-256" length="${MiB}">
${pieces.map((h) => `<hash>${h}</hash>`).join("\n")}
</pieces>
${urls.map((u) => `<url>${u}</url>`).join("\n")}
</file>
</metalink>
`,
  );
  const server = await startNginx(
    nginx,
    dir,
    hosts.map((h) => `  server { listen ${h}:${port}; root ${root}; }`).join("\n"),
  );
  try {
    await waitUntilServing(ctx, urls);
    const t0 = performance.now();
    const child = new Deno.Command(aria2c, {
      args: [
        "--no-conf",
        "--quiet",
        `--metalink-file=${dir}/payload.meta4`,
        `--dir=${out}`,
        "--split=3",
        "--max-connection-per-server=1",
        "--min-split-size=1M",
        "--file-allocation=none",
        "--check-integrity=true",
        "--realtime-chunk-checksum=true",
        "--disable-ipv6",
        "--console-log-level=error",
      ],
      stdout: "piped",
      stderr: "piped",
      signal: ctx.signal,
    }).spawn();
    const cpu = pollCpu(child.pid);
    const res = await child.output();
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = cpu.stop();
    if (!res.success) {
      const text = new TextDecoder().decode(res.stderr).trim().slice(-300);
      return { note: `${label}: aria2c reference failed with exit ${res.code}: ${text}` };
    }
    const got = await Deno.stat(`${out}/payload.bin`);
    if (got.size !== bytes) {
      return { note: `${label}: aria2c reference wrote ${got.size} bytes, not ${bytes}` };
    }
    const value = rate(bytes, seconds);
    ctx.log(`${label}: aria2c reference ${value.toFixed(0)} MiB/s`);
    return {
      figure: {
        name: `reference: aria2c, ${label} from 3 nginx sources`,
        value,
        unit: "MiB/s",
        note: `${seconds.toFixed(2)} s to disk, SHA-256 per 1 MiB piece and of the whole file ` +
          `(metalink); CPU aria2c ≈${cpuSeconds === null ? "?" : cpuSeconds.toFixed(2)} s`,
      },
    };
  } finally {
    await server.stop();
  }
}

/** Resolves once every URL answers a HEAD request. */
async function waitUntilServing(ctx: BenchContext, urls: string[]): Promise<void> {
  for (let i = 0; i < 50; i++) {
    ctx.signal.throwIfAborted();
    try {
      for (const u of urls) {
        const res = await fetch(u, { method: "HEAD" });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`${u} answered ${res.status}`);
      }
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`nginx did not start serving ${urls.join(", ")} within 5 s`);
}

/**
 * The CPU time of a process that is about to exit (and be reaped): read every
 * 100 ms while it runs, the last reading kept.
 */
function pollCpu(pid: number): { stop(): number | null } {
  let last: number | null = null;
  const timer = setInterval(() => {
    processCpuSeconds(pid).then((s) => {
      if (s !== null) last = s;
    }, () => {});
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      return last;
    },
  };
}

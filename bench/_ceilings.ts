/**
 * The ceilings `peer_download` compares with: one Deno process writing 1 GiB to
 * another over one loopback TCP connection, and this process writing 1 GiB into a
 * new file. A download can go no faster than either.
 *
 * @module
 */
import { z } from "zod";
import {
  type BenchContext,
  cpuUse,
  type Figure,
  MiB,
  phaseSignal,
  processCpuSeconds,
  rate,
} from "./_bench.ts";

/** What the TCP sink prints at its end. */
const SinkReport = z.object({ bytes: z.number(), seconds: z.number() });

/** Bytes of the raw TCP transfer. */
const TCP_BYTES = 1024 * MiB;
/** Bytes of the raw file write. */
const DISK_BYTES = 1024 * MiB;

/** Receives one connection, reads it to the end, prints `{bytes, seconds}` from the first byte. */
const TCP_SINK = `
const listener = Deno.listen({ hostname: Deno.args[0], port: 0 });
console.log(listener.addr.port);
const conn = await listener.accept();
listener.close();
const buf = new Uint8Array(2 * 1024 * 1024);
let bytes = 0;
let t0 = 0;
for (;;) {
  const n = await conn.read(buf);
  if (n === null) break;
  if (bytes === 0) t0 = performance.now();
  bytes += n;
}
conn.close();
console.log(JSON.stringify({ bytes, seconds: (performance.now() - t0) / 1000 }));
`;

/** Connects and writes `Deno.args[2]` bytes in 1 MiB writes. */
const TCP_SOURCE = `
const conn = await Deno.connect({ hostname: Deno.args[0], port: Number(Deno.args[1]) });
const buf = new Uint8Array(1024 * 1024).fill(7);
let left = Number(Deno.args[2]);
while (left > 0) left -= await conn.write(left >= buf.length ? buf : buf.subarray(0, left));
conn.close();
`;

/** One Deno process writing 1 GiB to another over one loopback TCP connection to `host`. */
export async function rawTcp(ctx: BenchContext, dir: string, host: string): Promise<Figure> {
  await Deno.writeTextFile(`${dir}/tcp_sink.ts`, TCP_SINK);
  await Deno.writeTextFile(`${dir}/tcp_source.ts`, TCP_SOURCE);
  const signal = phaseSignal(ctx.signal, TCP_BYTES);
  const deno = (script: string, args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${dir}/${script}`, ...args],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  const sink = deno("tcp_sink.ts", [host]);
  const lines = sink.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const readLine = async () => {
    for (;;) {
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        return line;
      }
      const { done, value } = await lines.read();
      if (done) throw new Error(`TCP sink ended early: ${out}`);
      out += value;
    }
  };
  const port = Number(await readLine());
  const source = await deno("tcp_source.ts", [host, String(port), String(TCP_BYTES)])
    .output();
  const result = SinkReport.parse(JSON.parse(await readLine()));
  lines.cancel().catch(() => {});
  const status = await sink.status;
  await sink.stderr.cancel();
  if (!source.success || !status.success || result.bytes !== TCP_BYTES) {
    throw new Error(
      `Raw TCP transfer failed: source exit ${source.code}, sink exit ${status.code}, ` +
        `${result.bytes} bytes: ${new TextDecoder().decode(source.stderr)}`,
    );
  }
  const value = rate(result.bytes, result.seconds);
  ctx.log(`raw loopback TCP: ${value.toFixed(0)} MiB/s`);
  return {
    name: "raw loopback TCP, Deno to Deno",
    value,
    unit: "MiB/s",
    note: `1 GiB over 1 connection, 1 MiB writes, 2 MiB reads: the ceiling`,
  };
}

/**
 * Seconds to write `bytes` into one new file `path`, 1 MiB a write, no fsync (the file
 * is removed after): the reference a command writing that many bytes is compared with.
 */
export async function rawWriteSeconds(
  path: string,
  bytes: number,
  signal: AbortSignal,
): Promise<number> {
  const block = new Uint8Array(MiB).fill(7);
  const t0 = performance.now();
  {
    using file = await Deno.open(path, { write: true, createNew: true });
    for (let left = bytes; left > 0; left -= MiB) {
      signal.throwIfAborted();
      const part = block.subarray(0, Math.min(MiB, left));
      for (let off = 0; off < part.length;) off += await file.write(part.subarray(off));
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await Deno.remove(path);
  return seconds;
}

/**
 * Writes 1 GiB into one new file in the temporary directory, 1 MiB a write, from
 * this process: what the file system takes for fresh data, the other ceiling.
 */
export async function rawDisk(ctx: BenchContext, dir: string): Promise<Figure> {
  const cpu0 = await processCpuSeconds(Deno.pid);
  const seconds = await rawWriteSeconds(`${dir}/disk-ceiling.bin`, DISK_BYTES, ctx.signal);
  const cpu1 = await processCpuSeconds(Deno.pid);
  const value = rate(DISK_BYTES, seconds);
  ctx.log(`raw file write: ${value.toFixed(0)} MiB/s`);
  return {
    name: "raw file write, Deno",
    value,
    unit: "MiB/s",
    note: `1 GiB into 1 new file, 1 MiB writes, no fsync; CPU ${cpuUse(cpu0, cpu1, seconds)}`,
  };
}

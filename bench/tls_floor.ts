/**
 * What Deno's TLS costs before this program does anything: 1 GiB sent over loopback in
 * 1 MiB writes and read into a 1 MiB buffer, once over `Deno.listenTls` and
 * `Deno.startTls` (pinned to a link certificate, as peer links are) and once over
 * plain TCP, printing the CPU-seconds of the sender (a child process) and of the
 * receiver. Run by hand, it is not a `make bench` scenario:
 *
 * ```sh
 * deno run -A bench/tls_floor.ts          # tls, then plain, twice
 * ```
 *
 * Measured 2026-12-04 (4 runs each): receiver 0.58–0.80 CPU-s over TLS (65,536 reads,
 * one 16 KiB record each) against 0.17–0.21 in plaintext; sender 0.58–0.63 against
 * 0.24–0.26. The difference, 0.8–0.95 CPU-s per GiB, bounds what encryption costs a
 * download on 2 cores (bench/README.md).
 *
 * @module
 */
import { createLinkCert, LINK_CERT_NAME } from "../peer/link_tls.ts";
import { processCpuSeconds } from "./_bench.ts";

const GiB_IN_MIB = 1024;

/** CPU-seconds (user + system) this process has used (`processCpuSeconds()`). */
async function cpuSeconds(): Promise<number> {
  const seconds = await processCpuSeconds(Deno.pid);
  if (seconds === null) throw new Error("Needs /proc (Linux) for the CPU time");
  return seconds;
}

/** The child: connects, sends 1 GiB, prints its CPU-seconds. */
async function send(port: number, certPem: string | undefined): Promise<void> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  const conn = certPem === undefined
    ? tcp
    : await Deno.startTls(tcp, { hostname: LINK_CERT_NAME, caCerts: [certPem] });
  const block = new Uint8Array(1024 * 1024).fill(7);
  const c0 = await cpuSeconds();
  for (let i = 0; i < GiB_IN_MIB; i++) {
    for (let off = 0; off < block.length;) off += await conn.write(block.subarray(off));
  }
  console.log((await cpuSeconds() - c0).toFixed(2));
  conn.close();
}

/** One transfer: the receiver's seconds, CPU-seconds and reads, and the sender's CPU. */
async function transfer(tls: boolean): Promise<string> {
  const cert = tls ? await createLinkCert() : undefined;
  const listener = cert
    ? Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: cert.certPem, key: cert.keyPem })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      import.meta.filename!,
      "--send",
      String(port),
      ...(cert ? [cert.certPem] : []),
    ],
    stdout: "piped",
  }).spawn();
  const conn = await listener.accept();
  const buf = new Uint8Array(1024 * 1024);
  const c0 = await cpuSeconds();
  const t0 = performance.now();
  let bytes = 0;
  let reads = 0;
  for (;;) {
    let n: number | null = null;
    try {
      n = await conn.read(buf);
    } catch {
      // A TLS stream cut short without close_notify: the sender is done.
    }
    if (n === null) break;
    bytes += n;
    reads++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = await cpuSeconds() - c0;
  const sender = (await child.output()).stdout;
  listener.close();
  if (bytes !== GiB_IN_MIB * 1024 * 1024) throw new Error(`Received ${bytes} bytes, not 1 GiB`);
  return `${tls ? "tls  " : "plain"}: 1 GiB in ${seconds.toFixed(2)} s; receiver ${
    cpu.toFixed(2)
  } ` +
    `CPU-s (${reads} reads), sender ${new TextDecoder().decode(sender).trim()} CPU-s`;
}

if (import.meta.main) {
  if (Deno.args[0] === "--send") await send(Number(Deno.args[1]), Deno.args[2]);
  else for (const tls of [true, false, true, false]) console.log(await transfer(tls));
}

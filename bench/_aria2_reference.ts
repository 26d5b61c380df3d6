/**
 * A reference for `peer_download`: aria2c, a mature native multi-source downloader,
 * fetching the payload from three nginx servers on the same loopback addresses as
 * the source peers, into a new file on the same disk, verifying SHA-256 per 1 MiB
 * piece (a metalink with piece hashes, as a p2p manifest has). The copy is checked
 * against the payload's SHA-256 before its time counts.
 *
 * @module
 */
import { errorMessage } from "../proto/errors.ts";
import { type BenchContext, MiB, phaseSignal, startNginx, which } from "./_bench.ts";
import {
  assertSameBytes,
  freePort,
  type PayloadFile,
  type ReferenceTime,
  timedCommand,
  waitUntilServing,
} from "./_reference_kit.ts";

/**
 * Serves `payload` from nginx on each of `hosts` and times aria2c fetching it from all
 * of them with a metalink, verified.
 */
export async function aria2Reference(
  ctx: BenchContext,
  label: string,
  payload: PayloadFile,
  hosts: string[],
): Promise<ReferenceTime> {
  const [aria2c, nginx] = await Promise.all([which("aria2c"), which("nginx")]);
  if (!aria2c || !nginx) {
    const missing = [!aria2c && "aria2", !nginx && "nginx"].filter(Boolean).join(" and ");
    return { note: `${label}: no aria2c metalink reference: ${missing} not installed` };
  }
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-aria2-" });
  try {
    return await run(ctx, payload, hosts, dir, aria2c, nginx);
  } catch (err) {
    ctx.signal.throwIfAborted();
    return { note: `${label}: aria2c metalink reference failed: ${errorMessage(err)}` };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function run(
  ctx: BenchContext,
  payload: PayloadFile,
  hosts: string[],
  dir: string,
  aria2c: string,
  nginx: string,
): Promise<ReferenceTime> {
  const out = `${dir}/out`;
  await Deno.mkdir(out);
  const port = freePort(hosts[0]);
  const urls = hosts.map((h) => `http://${h}:${port}/${payload.name}`);
  await Deno.writeTextFile(
    `${dir}/payload.meta4`,
    `<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
<file name="${payload.name}">
<size>${payload.bytes}</size>
<hash type="sha-256">${payload.sha256}</hash>
<pieces type="sha-256" length="${MiB}">
${payload.pieces.map((h) => `<hash>${h}</hash>`).join("\n")}
</pieces>
${urls.map((u) => `<url>${u}</url>`).join("\n")}
</file>
</metalink>
`,
  );
  const server = await startNginx(
    nginx,
    dir,
    hosts.map((h) => `  server { listen ${h}:${port}; root ${payload.dir}; }`).join("\n"),
  );
  try {
    await waitUntilServing(urls, ctx.signal);
    const time = await timedCommand(aria2c, [
      "--no-conf",
      "--quiet",
      `--metalink-file=${dir}/payload.meta4`,
      `--dir=${out}`,
      `--split=${hosts.length}`,
      "--max-connection-per-server=1",
      "--min-split-size=1M",
      "--file-allocation=none",
      "--check-integrity=true",
      "--realtime-chunk-checksum=true",
      "--disable-ipv6",
      "--console-log-level=error",
    ], phaseSignal(ctx.signal, payload.bytes));
    await assertSameBytes(`${out}/${payload.name}`, payload, ctx.signal);
    return time;
  } finally {
    await server.stop();
  }
}

/**
 * A reference for a download from one source: curl fetching the payload from one
 * nginx server (sendfile on) on the source peer's loopback address into a new file,
 * the copy checked against the payload's SHA-256 before its time counts.
 *
 * @module
 */
import { errorMessage } from "../proto/errors.ts";
import { type BenchContext, phaseSignal, startNginx, which } from "./_bench.ts";
import {
  assertSameBytes,
  freePort,
  type PayloadFile,
  type ReferenceTime,
  timedCommand,
  waitUntilServing,
} from "./_reference_kit.ts";

/** Serves `payload` from nginx on `host` and times `curl -o FILE` fetching it. */
export async function curlReference(
  ctx: BenchContext,
  label: string,
  payload: PayloadFile,
  host: string,
): Promise<ReferenceTime> {
  const [curl, nginx] = await Promise.all([which("curl"), which("nginx")]);
  if (!curl || !nginx) {
    const missing = [!curl && "curl", !nginx && "nginx"].filter(Boolean).join(" and ");
    return { note: `${label}: no curl reference: ${missing} not installed` };
  }
  const dir = await Deno.makeTempDir({ prefix: "p2p-bench-curl-" });
  try {
    const port = freePort(host);
    const url = `http://${host}:${port}/${payload.name}`;
    const server = await startNginx(
      nginx,
      dir,
      `  server { listen ${host}:${port}; root ${payload.dir}; }`,
    );
    try {
      await waitUntilServing([url], ctx.signal);
      const out = `${dir}/${payload.name}`;
      const time = await timedCommand(
        curl,
        ["--silent", "--show-error", "--fail", "--noproxy", "*", "--output", out, url],
        phaseSignal(ctx.signal, payload.bytes),
      );
      await assertSameBytes(out, payload, ctx.signal);
      return time;
    } finally {
      await server.stop();
    }
  } catch (err) {
    ctx.signal.throwIfAborted();
    return { note: `${label}: curl reference failed: ${errorMessage(err)}` };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

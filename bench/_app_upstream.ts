/**
 * An application server for the `http_proxy` benchmark, run as its own process:
 * `deno run -A bench/_app_upstream.ts HOST`. `GET /static` answers 10 KiB from memory
 * (as cheap as a Deno server gets); `GET /work` first does some work, a SHA-256 over
 * 256 KiB (about what rendering a small page from data costs), and answers JSON.
 * Prints `listening on http://HOST:PORT (…)` once it listens.
 *
 * @module
 */
import { createHash } from "node:crypto";

const [host = "127.0.0.1"] = Deno.args;
const page = new TextEncoder().encode("<!doctype html>" + "x".repeat(10 * 1024 - 15));
const input = new Uint8Array(256 * 1024).fill(7);

Deno.serve({
  hostname: host,
  port: 0,
  onListen: (addr) => console.log(`listening on http://${addr.hostname}:${addr.port} (bench app)`),
}, (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/static") {
    return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  if (path === "/work") {
    const digest = createHash("sha256").update(input).digest("hex");
    return Response.json({ digest, at: Date.now() });
  }
  return new Response("not found", { status: 404 });
});

/**
 * Devices that answer on a pingback port but are not (honest) p2p peers, for
 * discovery tests: in process (`fakePingbackHandler`) or as a child process
 * (`deno run -A tests/_fake_pingback.ts MODE HOST PORT`, printing `listening` once
 * it listens).
 *
 * - `other-json`: a plain HTTP server answering some other JSON.
 * - `bad-signature`: a well-formed peer answer whose signature does not verify (it
 *   signs a different nonce).
 * - `impostor`: a well-formed, validly signed answer that claims a peerId its public
 *   key does not hash to.
 * - `unsigned`: a well-formed answer that ignores the nonce.
 *
 * @module
 */
import { z } from "zod";
import { type PingbackPorts, pingbackSignedBytes } from "../proto/discovery.ts";
import { toBase64Url } from "../proto/ids.ts";
import { PROTOCOL_VERSION } from "../proto/frame.ts";
import { peerIdFromPublicKey } from "../peer/identity.ts";

/** What a fake device does. */
export const FakeMode = z.enum(["other-json", "bad-signature", "impostor", "unsigned"]);
/** What a fake device does. */
export type FakeMode = z.infer<typeof FakeMode>;

/** A request handler behaving as `mode` says, on a device whose pingback port is `port`. */
export async function fakePingbackHandler(
  mode: FakeMode,
  port: number,
): Promise<(req: Request) => Promise<Response>> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  if (!("privateKey" in pair)) throw new TypeError("Ed25519 key generation gave no key pair");
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const publicKey = toBase64Url(raw);
  const ownId = await peerIdFromPublicKey(raw);
  const peerId = mode === "impostor" ? "0123456789abcdef0123456789abcdef01234567" : ownId;
  const ports: PingbackPorts = { pingback: port, chunk: 5801, http: 5805 };
  const sign = async (nonce: string) =>
    toBase64Url(
      new Uint8Array(
        await crypto.subtle.sign(
          "Ed25519",
          pair.privateKey,
          pingbackSignedBytes(nonce, peerId, ports) as BufferSource,
        ),
      ),
    );
  return async (req) => {
    if (mode === "other-json") return Response.json({ status: "ok", service: "printer" });
    const nonce = new URL(req.url).searchParams.get("nonce") ?? "";
    const answer: Record<string, unknown> = {
      service: "p2p",
      protocol: PROTOCOL_VERSION,
      version: "0.1.0",
      peerId,
      name: `fake-${mode}`,
      publicKey,
      ports,
    };
    if (mode !== "unsigned") {
      answer.nonce = nonce;
      answer.signature = await sign(mode === "bad-signature" ? `${nonce}x` : nonce);
    }
    return Response.json(answer);
  };
}

if (import.meta.main) {
  const [mode, host, port] = z.tuple([FakeMode, z.string(), z.coerce.number().int()]).parse(
    Deno.args,
  );
  const handler = await fakePingbackHandler(mode, port);
  Deno.serve({ hostname: host, port, onListen: () => console.log("listening") }, handler);
}

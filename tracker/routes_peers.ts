/**
 * The tracker's peer routes, to mount at `/peers`: `POST /peers` registers or
 * heartbeats a peer (its host defaults to the caller's address), `GET /peers` lists
 * live ones (`?numwant=` of them at random, or `?since=` a version only what changed
 * after it; answered from the `PeerListing` kept ready, see `peer_listing.ts`),
 * `GET|DELETE /peers/{peerId}` reads or removes one. A registration is
 * a record signed by the peer it describes, and a removal carries that peer's
 * signature (`P2P-Signature` header): nobody changes another peer's entry
 * (`identity.ts`). Answers carry each signed record so others can check it.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { z } from "zod";
import { ForbiddenError, InvalidInputError } from "../proto/errors.ts";
import { PeerId } from "../proto/ids.ts";
import {
  DEFAULT_NUMWANT,
  PeerListQuery,
  RegisterPeerRequest,
  type RegisterPeerResponse,
  type RemovedResponse,
} from "../proto/tracker.ts";
import {
  parsePeerSignature,
  PEER_SIGNATURE_HEADER,
  peerRemoveBytes,
  registrationBytes,
} from "../proto/tracker_auth.ts";
import { jsonBody, limitBody, param, query } from "../lib/http_api.ts";
import { isWildcard, plainAddress } from "../lib/net_addr.ts";
import type { TrackerDeps, TrackerEnv } from "./deps.ts";
import { bodyTooLarge, unknownPeer } from "./errors.ts";
import { staleRecord } from "./identity.ts";
import { peerInfo } from "./peer_listing.ts";

/** Largest `POST /peers` body. */
const REGISTER_JSON = 64 * 1024;

/** The `/peers` routes. */
export function peerRoutes(
  { store, config, identity }: Pick<TrackerDeps, "store" | "config" | "identity">,
) {
  return new Hono<TrackerEnv>()
    .post("/", limitBody(REGISTER_JSON, () => bodyTooLarge(REGISTER_JSON)), async (c) => {
      const body = await jsonBody(c, RegisterPeerRequest);
      await identity.check(
        `registration of '${body.peerId}'`,
        body.peerId,
        body.publicKey,
        registrationBytes(body),
        body.signedAt,
        body.signature,
      );
      const caller = remoteHost(c);
      const host = body.host && !isWildcard(body.host) ? body.host : caller;
      if (!host) {
        throw new InvalidInputError("invalid_body", "Cannot register peer: 'host' is missing", {
          issues: [{ path: "host", message: "required when the caller's address is unknown" }],
        });
      }
      const { signedAt: _s, signature: _g, ...fields } = body;
      const { row, created } = await store.registerPeer(
        { ...fields, host, record: body, mayEvict: caller === undefined || caller === host },
        config.peerTtlMs,
      );
      // The caller has its record: the answer leaves it out (a third of its bytes).
      const { record: _r, ...peer } = peerInfo(row);
      const res: RegisterPeerResponse = {
        peer,
        created,
        ttlSeconds: config.peerTtlMs / 1000,
      };
      return c.json(res, created ? 201 : 200);
    })
    .get("/", (c) => {
      const q = query(c, PeerListQuery);
      const gzip = acceptsGzip(c.req.header("accept-encoding"));
      const body = store.listing.answer(q.numwant ?? DEFAULT_NUMWANT, q.since, gzip);
      const headers: Record<string, string> = {
        "content-type": "application/json",
        vary: "accept-encoding",
      };
      // A string answer (kept as text) goes out in one write with its head.
      if (typeof body !== "string") headers["content-encoding"] = "gzip";
      return c.body(body as string | Uint8Array<ArrayBuffer>, 200, headers);
    })
    .get("/:peerId", async (c) => {
      const peerId = param(c, "peerId", PeerId, "Peer id");
      const row = await store.getPeer(peerId);
      if (!row) throw unknownPeer(peerId);
      return c.json(peerInfo(row));
    })
    .delete("/:peerId", async (c) => {
      const peerId = param(c, "peerId", PeerId, "Peer id");
      const row = await store.getPeer(peerId);
      if (!row) throw unknownPeer(peerId);
      const signed = parsePeerSignature(c.req.header(PEER_SIGNATURE_HEADER));
      if (!signed) {
        throw new ForbiddenError(
          "signature_required",
          `Cannot remove peer '${peerId}': only the peer itself may, with its signature ` +
            "(P2P-Signature: signedAt=…, signature=…)",
        );
      }
      const what = `removal of '${peerId}'`;
      await identity.check(
        what,
        peerId,
        row.publicKey ?? "",
        peerRemoveBytes(peerId, signed.signedAt),
        signed.signedAt,
        signed.signature,
      );
      const removed = await store.removePeer(peerId, "peer.remove", (now) => {
        const last = now.record?.signedAt ?? 0;
        if (signed.signedAt <= last) throw staleRecord(what, signed.signedAt, last);
      });
      if (!removed) throw unknownPeer(peerId);
      const res: z.infer<typeof RemovedResponse> = { removed: peerId };
      return c.json(res);
    });
}

/** Whether an `Accept-Encoding` header takes gzip (named without `q=0`, or `*`). */
export function acceptsGzip(header: string | undefined): boolean {
  for (const part of (header ?? "").toLowerCase().split(",")) {
    const [coding, ...params] = part.split(";").map((x) => x.trim());
    if (coding !== "gzip" && coding !== "*") continue;
    const q = params.find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

/** The caller's address in its plain form (an IPv4-mapped address as IPv4). */
function remoteHost(c: Context<TrackerEnv>): string | undefined {
  const host = c.env?.remoteAddr?.hostname;
  return host === undefined ? undefined : plainAddress(host);
}

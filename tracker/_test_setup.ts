/**
 * Test fixture: a tracker app on a real KV file in a temporary directory, with a
 * clock the test moves by hand. Dispose it with `await using`. Also the signing side
 * of a peer for tests (`testIdentity()`, `signedRegistration()`, `signedHave()`,
 * `removalHeader()`), shared with the process tests in `tests/`.
 *
 * @module
 */
import { ActivityLog } from "./activity.ts";
import { createTrackerApp } from "./app.ts";
import { IdentityCheck } from "./identity.ts";
import { Metrics } from "./metrics.ts";
import { RequestRate } from "../lib/request_rate.ts";
import { ReplayCache } from "./replay_cache.ts";
import { TrackerStore } from "./store.ts";
import { toBase64Url } from "../proto/ids.ts";
import { peerIdFromPublicKey } from "../proto/signature.ts";
import {
  formatPeerSignature,
  haveBytes,
  PEER_SIGNATURE_HEADER,
  peerRemoveBytes,
  registrationBytes,
} from "../proto/tracker_auth.ts";
import type { HaveRequest, RegisterPeerRequest } from "../proto/tracker.ts";

/** An Ed25519 identity made for a test. */
export interface TestIdentity {
  peerId: string;
  publicKey: string;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** A fresh Ed25519 identity, as a peer's `identity.json` would hold. */
export async function testIdentity(): Promise<TestIdentity> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  if (!("privateKey" in pair)) throw new TypeError("Ed25519 key generation gave no key pair");
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return {
    peerId: await peerIdFromPublicKey(raw),
    publicKey: toBase64Url(raw),
    sign: async (data) =>
      new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, data as BufferSource)),
  };
}

let lastSignedAt = 0;
/** A signing time later than every earlier one in this process. */
export function nextSignedAt(now = Date.now()): number {
  lastSignedAt = Math.max(now, lastSignedAt + 1);
  return lastSignedAt;
}

/** A `POST /peers` body signed by `id`. */
export async function signedRegistration(
  id: TestIdentity,
  fields: Omit<RegisterPeerRequest, "peerId" | "publicKey" | "signedAt" | "signature">,
  signedAt = nextSignedAt(),
): Promise<RegisterPeerRequest> {
  const record = { ...fields, peerId: id.peerId, publicKey: id.publicKey, signedAt };
  return { ...record, signature: toBase64Url(await id.sign(registrationBytes(record))) };
}

/** A `POST /payloads/{id}/have` body signed by `id`. */
export async function signedHave(
  id: TestIdentity,
  payloadId: string,
  what: { have?: string; chunks?: number[] },
  signedAt = nextSignedAt(),
): Promise<HaveRequest> {
  const signature = toBase64Url(await id.sign(haveBytes(payloadId, id.peerId, what, signedAt)));
  return { peerId: id.peerId, ...what, signedAt, signature };
}

/** The `P2P-Signature` header of `DELETE /peers/{id.peerId}`. */
export async function removalHeader(
  id: TestIdentity,
  signedAt = nextSignedAt(),
): Promise<Record<string, string>> {
  const sig = await id.sign(peerRemoveBytes(id.peerId, signedAt));
  return { [PEER_SIGNATURE_HEADER]: formatPeerSignature(signedAt, sig) };
}

/** A tracker app under test. */
export interface TestTracker extends AsyncDisposable {
  request(path: string, init?: RequestInit, remote?: string): Promise<Response>;
  json(path: string, body: unknown, method?: string): Promise<Response>;
  advance(ms: number): void;
  store: TrackerStore;
  activity: ActivityLog;
  kv: Deno.Kv;
  dir: string;
}

/** Builds a tracker app on a fresh KV file. */
export async function testTracker(
  opts: { maxUpload?: number; peerTtlMs?: number; networkKey?: Uint8Array; rate?: number } = {},
): Promise<TestTracker> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-test-" });
  const kv = await Deno.openKv(`${dir}/tracker.kv`);
  let now = Date.UTC(2026, 0, 1);
  const clock = () => now;
  const activity = await ActivityLog.open(kv, { path: `${dir}/activity.jsonl`, clock });
  const store = new TrackerStore(kv, activity, clock);
  await store.load();
  // Signatures are checked against the real time (tests sign with Date.now()).
  const replay = new ReplayCache();
  const app = createTrackerApp({
    store,
    activity,
    metrics: new Metrics(),
    config: {
      peerTtlMs: opts.peerTtlMs ?? 60_000,
      maxUpload: opts.maxUpload ?? 8 * 1024 * 1024,
      version: "test",
      networkKey: opts.networkKey,
    },
    identity: new IdentityCheck(replay),
    replay,
    rate: new RequestRate({ rate: opts.rate ?? 0 }),
  });
  let closed = false;
  const request = (path: string, init?: RequestInit, remote = "127.0.0.9") =>
    Promise.resolve(
      app.request(path, init, {
        remoteAddr: { transport: "tcp", hostname: remote, port: 40000 },
      }),
    );
  return {
    request,
    json: (path, body, method = "POST") =>
      request(path, {
        method,
        body: typeof body === "string" ? body : JSON.stringify(body),
        headers: { "content-type": "application/json" },
      }),
    advance: (ms) => {
      now += ms;
    },
    store,
    activity,
    kv,
    dir,
    async [Symbol.asyncDispose]() {
      if (!closed) {
        closed = true;
        await activity.close();
        try {
          kv.close();
        } catch {
          // The test closed it on purpose.
        }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

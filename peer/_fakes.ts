/**
 * Small fakes of a peer's parts for the unit tests of the others: an activity log
 * that keeps what it is told, a known-peers table over an in-memory KV, a chunk store
 * in a temporary directory, linked wire connections over in-memory streams, and a
 * connection that answers requests from a function.
 *
 * @module
 */
import { PeerTable } from "./peer_table.ts";
import { ChunkStore } from "./chunk_store.ts";
import {
  type PeerConnection,
  PeerConnection as Connection,
  type RequestHandler,
} from "./connection.ts";
import { type AnswerOf, expectAnswer, type RequestTypeName } from "../proto/answers.ts";
import type { ActivityPage, ActivityRecord } from "../proto/activity.ts";
import type { HelloHeader, MessageInit, WirePorts } from "../proto/messages.ts";
import { type PeerRecord, signPeerRecord } from "../proto/peer_record.ts";
import { peerIdFromPublicKey } from "../proto/signature.ts";
import { toBase64Url } from "../proto/ids.ts";

/** A HELLO for a test peer whose id is `name` in hex, padded to 40 digits. */
export function hello(name: string, ports: HelloHeader["ports"] = { chunk: 5801 }): HelloHeader {
  return { peerId: peerIdOf(name), name, version: "0.1.0", ports };
}

/** The 40-hex-digit peer id of a test peer called `name`. */
export function peerIdOf(name: string): string {
  const hex = Array.from(name).map((c) => c.charCodeAt(0).toString(16)).join("");
  return hex.padEnd(40, "0").slice(0, 40);
}

/** An activity log that keeps every record in memory. */
export function fakeLog() {
  const records: ActivityRecord[] = [];
  return {
    records,
    /** The fields of every record of one type. */
    of: (type: string) => records.filter((r) => r.type === type),
    record(type: string, fields: Record<string, unknown> = {}): ActivityRecord {
      const rec = { ...fields, id: records.length + 1, ts: new Date().toISOString(), type };
      records.push(rec);
      return rec;
    },
    query(q: { limit?: number; type?: string }): ActivityPage {
      const of = records.filter((r) => !q.type || r.type.startsWith(q.type));
      return { records: of.slice(-(q.limit ?? 100)), next: null };
    },
  };
}

/** A known-peers table over an in-memory KV; disposing closes the KV. */
export async function memoryTable(self = peerIdOf("self")): Promise<PeerTable & AsyncDisposable> {
  const kv = await Deno.openKv(":memory:");
  const table = await PeerTable.open(kv, self);
  return Object.assign(table, {
    [Symbol.asyncDispose]: () => Promise.resolve(kv.close()),
  });
}

/**
 * A chunk store in a fresh temporary directory, holding at most `maxBytes` (default
 * 1 GiB, so tests do not depend on the disk's free space); disposing closes it and
 * removes the directory.
 */
export async function tempStore(maxBytes = 1024 ** 3): Promise<ChunkStore & AsyncDisposable> {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { maxBytes });
  return Object.assign(store, {
    async [Symbol.asyncDispose]() {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  });
}

/** A stream of `size` bytes that cut into chunks of `CHUNK_SIZE` differ from each other. */
export function bytesStream(size: number, seed = 1): ReadableStream<Uint8Array> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + seed + (i >> 20) * 31) & 0xff;
  return ReadableStream.from([bytes]);
}

/**
 * Two connected peers over linked in-memory streams, `a` (the dialer) and `b`, each
 * with its handler and a fresh identity (`ids`): the link handshake proves each
 * side's id, so `a.remote.peerId` is `ids.b.peerId`.
 */
export async function linkedPair(
  handlers: { a?: RequestHandler; b?: RequestHandler } = {},
): Promise<
  & { a: PeerConnection; b: PeerConnection; ids: { a: TestIdentity; b: TestIdentity } }
  & AsyncDisposable
> {
  const ab = new TransformStream<Uint8Array, Uint8Array>();
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  const ids = { a: await testIdentity("a"), b: await testIdentity("b") };
  const options = (id: TestIdentity, role: string, handler?: RequestHandler) =>
    ({ hello: id.hello, handler, link: { role, sign: id.sign } }) as unknown as Parameters<
      typeof Connection.open
    >[1];
  const [a, b] = await Promise.all([
    Connection.open(
      { readable: ba.readable, writable: ab.writable, close() {} },
      options(ids.a, "dialer", handlers.a),
    ),
    Connection.open(
      { readable: ab.readable, writable: ba.writable, close() {} },
      options(ids.b, "acceptor", handlers.b),
    ),
  ]);
  return {
    a,
    b,
    ids,
    async [Symbol.asyncDispose]() {
      a.close();
      b.close();
      await Promise.all([a.closed, b.closed]);
    },
  };
}

/** What a scripted connection answers a request with (the answer without its requestId). */
export type Script = (
  msg: { type: RequestTypeName; header: Record<string, unknown>; body?: Uint8Array },
) => Omit<MessageInit, "requestId"> | Promise<Omit<MessageInit, "requestId">>;

/**
 * A stand-in for a `PeerConnection` to the peer `name`: `request()` answers with what
 * `script` returns, checked like a real connection checks answers (ERROR becomes a
 * `RemoteError`), and every request is kept in `sent`.
 */
export function scriptedConn(name: string, script: Script) {
  const sent: { type: string; header: Record<string, unknown>; body?: Uint8Array }[] = [];
  const conn = {
    remote: hello(name),
    sent,
    closed: Promise.resolve(),
    async request<T extends RequestTypeName>(
      msg: { type: T; header: Record<string, unknown>; body?: Uint8Array },
    ): Promise<AnswerOf<T>> {
      sent.push(msg);
      const out = await script(msg);
      const answer = { body: new Uint8Array(0), ...out, requestId: 1 };
      return expectAnswer(msg.type, answer as never) as AnswerOf<T>;
    },
  };
  return conn as unknown as PeerConnection & { sent: typeof sent };
}

/** A test peer's identity: its key, a HELLO that carries it, and records it signs. */
export type TestIdentity = Awaited<ReturnType<typeof testIdentity>>;

/** A fresh Ed25519 identity in memory, its HELLO, and the signed records it makes of itself. */
export async function testIdentity(name = "test") {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const peerId = await peerIdFromPublicKey(raw);
  const publicKey = toBase64Url(raw);
  const sign = async (b: Uint8Array) =>
    new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, b as BufferSource));
  const hello: HelloHeader = { peerId, name, version: "0.1.0", ports: { chunk: 5801 }, publicKey };
  return {
    peerId,
    publicKey,
    name,
    sign,
    hello,
    /** This identity's record at `host` with `ports`, signed with its key. */
    record: (host: string, ports: WirePorts, seq = Date.now()): Promise<PeerRecord> =>
      signPeerRecord(sign, { peerId, publicKey, host, ports, seq, name }),
  };
}

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
import type { HelloHeader, MessageInit } from "../proto/messages.ts";

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

/** A chunk store in a fresh temporary directory; disposing closes it and removes the directory. */
export async function tempStore(): Promise<ChunkStore & AsyncDisposable> {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
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

/** Two connected peers over linked in-memory streams, `a` and `b`, each with its handler. */
export async function linkedPair(
  handlers: { a?: RequestHandler; b?: RequestHandler } = {},
): Promise<{ a: PeerConnection; b: PeerConnection } & AsyncDisposable> {
  const ab = new TransformStream<Uint8Array, Uint8Array>();
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  const [a, b] = await Promise.all([
    Connection.open({ readable: ba.readable, writable: ab.writable, close() {} }, {
      hello: hello("a"),
      handler: handlers.a,
    }),
    Connection.open({ readable: ab.readable, writable: ba.writable, close() {} }, {
      hello: hello("b"),
      handler: handlers.b,
    }),
  ]);
  return {
    a,
    b,
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

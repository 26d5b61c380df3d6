/**
 * An HTTP/1.1 gate in front of `Deno.serve`: the limits a server facing strangers
 * needs and `Deno.serve` cannot enforce (it tells nothing of connections and keeps a
 * request head that trickles open for as long as it trickles), with `Deno.serve`'s
 * speed and memory for everything else.
 *
 * The gate owns the public socket: it caps connections per remote address and in
 * all (one more is answered `429 too_many_connections`), reads each request head
 * with the relay's codec (`lib/http_relay/head.ts`: a head must arrive whole within
 * `headTimeoutMs` (`408`), be at most `maxHeadBytes` (`431`) and parse (`400`, with
 * the codec's smuggling guards), each a JSON error body and then the close), and
 * lets a whole request (head and body) take at most `requestTimeoutMs`. A small
 * request that passes (no body or a counted one up to 64 KiB) goes to the handler
 * straight from the parsed head, and the gate writes its answer
 * (`http_gate_direct.ts`): that is every request of a heartbeating peer. The others
 * go on as they came, byte for byte, over one loopback connection per client
 * connection to a `Deno.serve` listening on 127.0.0.1; answers come back untouched,
 * and the rest of that connection takes the same way so that answers keep their
 * order. The handler learns the client's address from the gate, or from the
 * loopback connection's port; a connection to the inner server that did not come
 * through the gate is answered 403.
 *
 * Measured against `node:http` carrying the same limits, see `tracker/http_server.ts`.
 *
 * @module
 */
import { errorBody } from "./http_api.ts";
import { hostPort } from "./net_addr.ts";
import { Deadlines } from "./http_relay/deadlines.ts";
import { copyBody } from "./http_relay/body.ts";
import { HttpParseError } from "./http_relay/errors.ts";
import { type BodyFraming, requestFraming } from "./http_relay/framing.ts";
import { headEnd, parseRequestHead, type RequestHead } from "./http_relay/head.ts";
import { closeQuietly, Inbox, writeAll } from "./http_relay/inbox.ts";
import { reasonPhrase } from "./http_relay/reasons.ts";
import {
  answersDirectly,
  closesAfter,
  directRequest,
  readDirectBody,
  writeDirectAnswer,
} from "./http_gate_direct.ts";

/** Limits of the gate. */
export interface GateLimits {
  /** Open connections per remote address. */
  connectionsPerAddress: number;
  /** Open connections in all. */
  maxConnections: number;
  /** A request head must be complete within this many ms of its first byte (or of the connection). */
  headTimeoutMs: number;
  /** A whole request (head and body) must arrive within this many ms. */
  requestTimeoutMs: number;
  /** A keep-alive connection with no request for this many ms is closed. */
  idleTimeoutMs: number;
  /** Largest request head, in bytes. */
  maxHeadBytes: number;
}

/** What the gate tells its owner about connections and requests it refused itself. */
export type GateRefusal = { remote: string; status: number; code: string; message: string };

/** Options of `startGate()`. */
export interface GateOptions {
  hostname: string;
  port: number;
  /** PEM certificate chain and key: serve HTTPS (the inner hop stays plain on loopback). */
  tls?: { cert: string; key: string };
  limits: GateLimits;
  /** Answers one request; `remote` is the client's address. */
  handler: (req: Request, remote: Deno.NetAddr) => Response | Promise<Response>;
  /** Told of each refusal the gate answers itself (connection caps, bad heads, timeouts). */
  onRefused?: (fields: GateRefusal) => void;
  /** Told of a handler failure (the client gets a 503). */
  onError?: (err: unknown) => void;
}

/** A running gate. */
export interface Gate {
  addr: Deno.NetAddr;
  /** Where the inner server listens (on loopback; it answers 403 to anything but the gate). */
  inner: Deno.NetAddr;
  /** Requests answered by the gate itself, and client connections relayed to the inner server. */
  readonly counts: GateCounts;
  /** Stops accepting, lets requests under way finish (`graceMs`, 10 s), then closes every connection. */
  shutdown(graceMs?: number): Promise<void>;
}

/** What `Gate.counts` tells. */
export interface GateCounts {
  directRequests: number;
  relayedConnections: number;
}

const encoder = new TextEncoder();
/** Bytes of an answer read from the inner server at a time. */
const ANSWER_READ = 16 * 1024;

/** Starts the inner server and the gate; resolves once both listen. */
export async function startGate(opts: GateOptions): Promise<Gate> {
  /** Client connections by the local port of their loopback connection to the inner server. */
  const clients = new Map<number, Inside>();
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const inner = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: listening.resolve,
    onError: (err) => {
      opts.onError?.(err);
      return unavailable();
    },
  }, async (req, info) => {
    const inside = clients.get(info.remoteAddr.port);
    if (!inside) {
      return Response.json(errorBody("forbidden", "Connect through the public port"), {
        status: 403,
      });
    }
    inside.busy++;
    try {
      return await opts.handler(req, inside.remote);
    } finally {
      inside.busy--;
    }
  });
  const innerAddr = await listening.promise;
  let listener: Deno.Listener;
  try {
    listener = opts.tls
      ? Deno.listenTls({ hostname: opts.hostname, port: opts.port, ...opts.tls })
      : Deno.listen({ hostname: opts.hostname, port: opts.port });
  } catch (err) {
    await inner.shutdown();
    throw err;
  }
  const gate = new GateServer(listener, innerAddr, clients, opts);
  return {
    addr: listener.addr as Deno.NetAddr,
    inner: innerAddr,
    counts: gate.counts,
    shutdown: async (graceMs = 10_000) => {
      await gate.close(graceMs);
      await inner.shutdown();
    },
  };
}

/** What the inner server's handler knows of a client connection. */
interface Inside {
  remote: Deno.NetAddr;
  /** Requests of this connection in the handler now. */
  busy: number;
}

/** One client connection: whether it is between requests. */
interface Client {
  idle: boolean;
  up?: Deno.Conn;
}

class GateServer {
  readonly #listener: Deno.Listener;
  readonly #inner: Deno.NetAddr;
  readonly #addr: Deno.NetAddr;
  readonly #clients: Map<number, Inside>;
  readonly #opts: GateOptions;
  readonly #deadlines: Deadlines;
  readonly #perAddress = new Map<string, number>();
  readonly counts: GateCounts = { directRequests: 0, relayedConnections: 0 };
  readonly #open = new Map<Deno.Conn, Client>();
  readonly #accepting: Promise<void>;
  #closing: Promise<void> | undefined;
  #drained = Promise.withResolvers<void>();

  constructor(
    listener: Deno.Listener,
    inner: Deno.NetAddr,
    clients: Map<number, Inside>,
    opts: GateOptions,
  ) {
    this.#listener = listener;
    this.#addr = listener.addr as Deno.NetAddr;
    this.#inner = inner;
    this.#clients = clients;
    this.#opts = opts;
    const { headTimeoutMs, idleTimeoutMs, requestTimeoutMs } = opts.limits;
    const shortest = Math.min(headTimeoutMs, idleTimeoutMs, requestTimeoutMs);
    this.#deadlines = new Deadlines(Math.min(250, Math.max(5, shortest / 10)));
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.#admit(conn);
    } catch {
      // The listener was closed.
    }
  }

  #admit(conn: Deno.Conn): void {
    const { limits } = this.#opts;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const from = remote.hostname;
    const open = this.#perAddress.get(from) ?? 0;
    if (this.#closing) return closeQuietly(conn);
    if (open >= limits.connectionsPerAddress || this.#open.size >= limits.maxConnections) {
      const message = open >= limits.connectionsPerAddress
        ? `Too many connections from '${from}' (at most ${limits.connectionsPerAddress})`
        : `Too many connections (at most ${limits.maxConnections})`;
      this.#refused({ remote: from, status: 429, code: "too_many_connections", message });
      // Over TLS an answer would cost a handshake first: the connection just closes.
      if (this.#opts.tls) return closeQuietly(conn);
      const answer = errorAnswer(429, "too_many_connections", message, { "retry-after": "1" });
      writeAll(conn, answer).catch(() => {}).finally(() => closeQuietly(conn));
      return;
    }
    this.#perAddress.set(from, open + 1);
    const client: Client = { idle: true };
    this.#open.set(conn, client);
    this.#serve(conn, remote, client).catch(() => {}).finally(() => {
      const left = (this.#perAddress.get(from) ?? 1) - 1;
      if (left > 0) this.#perAddress.set(from, left);
      else this.#perAddress.delete(from);
      this.#open.delete(conn);
      closeQuietly(conn);
      if (client.up) closeQuietly(client.up);
      if (this.#closing && this.#open.size === 0) this.#drained.resolve();
    });
  }

  /**
   * Serves one client connection: heads checked here; small requests answered here
   * (`http_gate_direct.ts`), the others relayed to the inner server. Once one was
   * relayed, the rest of the connection is too, so that answers keep their order.
   */
  async #serve(conn: Deno.Conn, remote: Deno.NetAddr, client: Client): Promise<void> {
    const { limits } = this.#opts;
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const inside: Inside = { remote, busy: 0 };
    /** What a passing deadline means now. */
    let phase: "idle" | "head" | "request" | "handler" | "answer" = "idle";
    /** Bytes of answers sent to the client so far. */
    let answered = 0;
    let answeredAtStart = 0;
    /** The relay to the inner server, once a request needed it. */
    let relay: { up: Deno.Conn; port: number; answers: Promise<void> } | undefined;
    const inbox = new Inbox(conn);
    const deadline = this.#deadlines.make(() => {
      // Idle while the handler still works on this connection's request: not idle.
      if (phase === "idle" && inside.busy > 0) return deadline.arm(limits.idleTimeoutMs);
      // The handler's time is its own, as for a relayed request.
      if (phase === "handler") return deadline.arm(limits.idleTimeoutMs);
      // A head that has begun, or a request not answered yet: 408; idle: just the close.
      if ((phase === "head" || phase === "request") && answered === answeredAtStart) {
        const message = `Request did not arrive within ${limits.headTimeoutMs} ms (head) or ` +
          `${limits.requestTimeoutMs} ms (whole)`;
        this.#refused({ remote: remote.hostname, status: 408, code: "timeout", message });
        writeAll(conn, errorAnswer(408, "timeout", message)).catch(() => {}).finally(() => {
          closeQuietly(conn);
          if (relay) closeQuietly(relay.up);
        });
      } else {
        closeQuietly(conn);
        if (relay) closeQuietly(relay.up);
      }
    });
    const relayTo = async () => {
      const up = client.up = await Deno.connect({
        hostname: this.#inner.hostname,
        port: this.#inner.port,
      });
      up.setNoDelay(true);
      const port = (up.localAddr as Deno.NetAddr).port;
      this.#clients.set(port, inside);
      this.counts.relayedConnections++;
      const answers = this.#answers(up, conn, (n) => {
        answered += n;
        // An answer going out is not idleness.
        if (phase === "idle") deadline.arm(limits.idleTimeoutMs);
      });
      return { up, port, answers };
    };
    /** Answers one request here; false when the connection must close. */
    const answer = async (head: { parsed: RequestHead; framing: BodyFraming }) => {
      const body = await readDirectBody(inbox, head.framing);
      if (body === undefined) return false;
      let req: Request;
      try {
        req = directRequest(head.parsed, body, hostPort(this.#addr.hostname, this.#addr.port));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#refused({ remote: remote.hostname, status: 400, code: "bad_request", message });
        await writeAll(conn, errorAnswer(400, "bad_request", message)).catch(() => {});
        return false;
      }
      phase = "handler";
      deadline.arm(limits.idleTimeoutMs);
      this.counts.directRequests++;
      let res: Response;
      inside.busy++;
      try {
        res = await this.#opts.handler(req, remote);
      } catch (err) {
        this.#opts.onError?.(err);
        res = unavailable();
      } finally {
        inside.busy--;
      }
      phase = "answer";
      const close = closesAfter(head.parsed) || this.#closing !== undefined;
      await writeDirectAnswer(res, close, async (bytes) => {
        // Each part must go within the idle time: a client that stops reading is dropped.
        deadline.arm(limits.idleTimeoutMs);
        await writeAll(conn, bytes);
        answered += bytes.byteLength;
      });
      return !close;
    };
    try {
      for (let first = true;; first = false) {
        client.idle = true;
        phase = "idle";
        if (this.#closing) return;
        deadline.arm(first ? limits.headTimeoutMs : limits.idleTimeoutMs);
        if (inbox.length === 0 && !await inbox.fill()) return;
        client.idle = false;
        phase = "head";
        answeredAtStart = answered;
        if (!first) deadline.arm(limits.headTimeoutMs);
        let head: { parsed: RequestHead; raw: Uint8Array; framing: BodyFraming } | undefined;
        try {
          head = await readRawHead(inbox, limits.maxHeadBytes);
        } catch (err) {
          if (!(err instanceof HttpParseError)) throw err;
          this.#refused({
            remote: remote.hostname,
            status: err.status,
            code: err.code,
            message: err.message,
          });
          await writeAll(conn, errorAnswer(err.status, err.code, err.message)).catch(() => {});
          return;
        }
        if (!head) return;
        phase = "request";
        deadline.arm(limits.requestTimeoutMs);
        if (!relay && answersDirectly(head.parsed, head.framing)) {
          if (!await answer(head)) return;
          continue;
        }
        const { up } = relay ??= await relayTo();
        await writeAll(up, head.raw);
        const whole = await copyBody(inbox, head.framing, (bytes) => writeAll(up, bytes));
        if (!whole) return;
      }
    } finally {
      deadline.disarm();
      if (relay) {
        // The client sent all it will: an answer under way may still go out, for a while.
        await relay.up.closeWrite().catch(() => {});
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          relay.answers,
          new Promise<void>((r) => timer = setTimeout(r, limits.idleTimeoutMs)),
        ]);
        clearTimeout(timer);
        this.#clients.delete(relay.port);
      }
    }
  }

  /** Copies the inner server's answers to the client until either side ends. */
  async #answers(up: Deno.Conn, conn: Deno.Conn, sent: (n: number) => void): Promise<void> {
    // 16 KiB: a connection costs this, its inbox and the inner server's side (three
    // file descriptors in all: client, gate to inner, inner's accepted socket).
    const buf = new Uint8Array(ANSWER_READ);
    try {
      for (;;) {
        const n = await up.read(buf);
        if (n === null) break;
        await writeAll(conn, buf.subarray(0, n));
        sent(n);
      }
    } catch {
      // Either side went away.
    }
    closeQuietly(conn);
  }

  #refused(fields: GateRefusal): void {
    try {
      this.#opts.onRefused?.(fields);
    } catch { /* a failing listener must not stop the gate */ }
  }

  close(graceMs: number): Promise<void> {
    return this.#closing ??= (async () => {
      try {
        this.#listener.close();
      } catch { /* already closed */ }
      await this.#accepting;
      for (const [conn, client] of this.#open) if (client.idle) closeQuietly(conn);
      if (this.#open.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          this.#drained.promise,
          new Promise<void>((r) => timer = setTimeout(r, graceMs)),
        ]);
        clearTimeout(timer);
        for (const [conn, client] of this.#open) {
          closeQuietly(conn);
          if (client.up) closeQuietly(client.up);
        }
        if (this.#open.size > 0) await this.#drained.promise;
      }
      this.#deadlines.stop();
    })();
  }
}

/**
 * Reads one request head, keeping its bytes as they came; undefined when the socket
 * ends first. Throws `HttpParseError` for a head over `max` bytes (431) or one the
 * codec refuses.
 */
async function readRawHead(
  inbox: Inbox,
  max: number,
): Promise<{ parsed: RequestHead; raw: Uint8Array; framing: BodyFraming } | undefined> {
  let scanned = 0;
  for (;;) {
    const end = headEnd(inbox.bytes(), inbox.length, Math.max(0, scanned - 3));
    if (end > max || (end < 0 && inbox.length > max)) {
      throw new HttpParseError(431, "head_too_large", `Request head is over ${max} bytes`);
    }
    if (end >= 0) {
      const raw = inbox.bytes(end).slice();
      const parsed = parseRequestHead(raw);
      const framing = requestFraming(parsed);
      if (!parsed.target.startsWith("/")) {
        throw new HttpParseError(
          400,
          "bad_request",
          `Request target '${parsed.target.slice(0, 64)}' is not a path`,
        );
      }
      inbox.consume(end);
      return { parsed, raw, framing };
    }
    scanned = inbox.length;
    if (!await inbox.fill()) return undefined;
  }
}

/** The answer to a request whose handler failed. */
function unavailable(): Response {
  return Response.json(errorBody("unavailable", "Server cannot serve this now"), { status: 503 });
}

/** A JSON error answer that closes the connection. */
function errorAnswer(
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): Uint8Array {
  const body = JSON.stringify(errorBody(code, message));
  const head = [
    `HTTP/1.1 ${status} ${reasonPhrase(status) || "Error"}`,
    "Content-Type: application/json",
    `Content-Length: ${encoder.encode(body).byteLength}`,
    "Connection: close",
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ].join("\r\n");
  return encoder.encode(`${head}\r\n\r\n${body}`);
}

/**
 * Body copying between two sockets' inboxes and connections, the bytes as they
 * are: a body of a counted length, a chunked one (tracked to its end, never
 * decoded), one delimited by the end of the connection, and both ways at once
 * after an upgrade (`tunnel()`). A socket that does not take more stops the
 * reading of the other one (backpressure): each part is written before the next
 * read.
 *
 * @module
 */
import { ChunkedTracker } from "./chunked.ts";
import type { BodyFraming } from "./framing.ts";
import { closeQuietly, type Inbox, writeAll } from "./inbox.ts";

/** Framing of what goes through a tunnel: until the connection ends. */
const UNTIL_CLOSE: BodyFraming = { kind: "close" };

/**
 * Copies one body, as `framing` delimits it, from `inbox` with `write`. The first
 * `lead` bytes of the inbox (an answer head put there) go out with the first part
 * of the body. Resolves with false if the socket ended before the body did (a body
 * delimited by the end of the connection is then complete). Rejects with an
 * `HttpParseError` for a malformed chunked body, and as `write` does.
 */
export async function copyBody(
  inbox: Inbox,
  framing: BodyFraming,
  write: (bytes: Uint8Array) => Promise<void>,
  lead = 0,
): Promise<boolean> {
  const send = async (n: number) => {
    await write(inbox.bytes(lead + n));
    inbox.consume(lead + n);
    lead = 0;
  };
  const tracker = framing.kind === "chunked" ? new ChunkedTracker() : undefined;
  let left = framing.kind === "length" ? framing.length : framing.kind === "none" ? 0 : Infinity;
  // What precedes the body does not wait for it (a stream may be slow).
  if (lead > 0 && inbox.length === lead) await send(0);
  while (tracker ? !tracker.done : left > 0) {
    if (inbox.length === lead && !await inbox.fill()) {
      if (lead > 0) await send(0);
      return framing.kind === "close";
    }
    const body = inbox.bytes().subarray(lead);
    const n = tracker ? tracker.push(body) : Math.min(left, body.byteLength);
    await send(n);
    left -= n;
  }
  if (lead > 0) await send(0);
  return true;
}

/**
 * Relays bytes both ways between two sockets (after a 101), until either side
 * ends; then both are closed.
 */
export async function tunnel(a: Inbox, b: Inbox): Promise<void> {
  const copy = async (from: Inbox, to: Deno.Conn) => {
    await copyBody(from, UNTIL_CLOSE, (bytes) => writeAll(to, bytes)).catch(() => {});
    closeQuietly(to);
    closeQuietly(from.conn);
  };
  await Promise.all([copy(a, b.conn), copy(b, a.conn)]);
}

/**
 * A connected pair of TCP sockets on 127.0.0.1, for the tests of the parts that
 * read and write sockets.
 *
 * @module
 */

/** Two ends of one TCP connection on loopback; disposing closes both (if open). */
export interface SocketPair extends AsyncDisposable {
  /** The end that connected. */
  client: Deno.TcpConn;
  /** The end that was accepted. */
  server: Deno.TcpConn;
}

/** A new connection on 127.0.0.1, both ends. */
export async function socketPair(): Promise<SocketPair> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  return {
    client,
    server,
    [Symbol.asyncDispose]() {
      for (const c of [client, server]) {
        try {
          c.close();
        } catch {
          // Closed by the test.
        }
      }
      return Promise.resolve();
    },
  };
}

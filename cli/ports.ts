/**
 * Which of the ports a role asked for is taken, found after a listen failed with
 * `AddrInUse` by binding each one again for a moment (on the role's own address; no
 * traffic is sent), so the error names the busy port and the option that moves it.
 *
 * ```ts
 * import { busyPorts } from "./ports.ts";
 *
 * using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const busy = busyPorts("127.0.0.1", [["--port", taken.addr.port], ["--http-port", 0]]);
 * console.assert(busy.length === 1 && busy[0][0] === "--port");
 * ```
 *
 * @module
 */

/** The `[option, port]` pairs whose port cannot be bound on `host` now (port 0 never is). */
export function busyPorts(host: string, ports: [string, number][]): [string, number][] {
  return ports.filter(([, port]) => {
    if (port === 0) return false;
    try {
      Deno.listen({ hostname: host, port, transport: "tcp" }).close();
      return false;
    } catch (err) {
      return err instanceof Deno.errors.AddrInUse;
    }
  });
}

/** The words of an `AddrInUse` failure: `port 5805 (--http-port) is in use on 0.0.0.0`. */
export function busyMessage(
  host: string,
  busy: [string, number][],
  all: [string, number][],
): string {
  if (busy.length === 0) {
    const asked = all.filter(([, p]) => p !== 0).map(([flag, p]) => `${p} (${flag})`);
    return `Cannot listen on ${host}: one of the ports ${asked.join(", ")} is in use`;
  }
  const named = busy.map(([flag, port]) => `${port} (${flag})`);
  return `Cannot listen on ${host}: port ${named.join(" and ")} ${
    busy.length === 1 ? "is" : "are"
  } in use; stop what uses it or choose another with ${busy.map(([f]) => f).join(", ")}`;
}

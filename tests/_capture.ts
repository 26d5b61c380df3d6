/**
 * A capture of loopback traffic for tests that look at what goes on the wire: a
 * child `python3 tests/_loopback_capture.py` reading `lo` with a raw socket (it needs
 * CAP_NET_RAW, as root has), keeping the TCP data to or from the given addresses.
 * Deno has no raw sockets, hence the helper in Python.
 *
 * @module
 */

/** What a capture saw of one address. */
export interface Captured {
  /** Data bytes sent to it and from it. */
  bytes: number;
  /** All the data, both ways, in the order seen. */
  data: Uint8Array;
}

/** A running capture; `stop()` ends it and returns what each address saw. */
export interface Capture extends AsyncDisposable {
  stop(): Promise<Captured[]>;
}

/** Starts capturing the TCP data to or from each `host:port` in `addresses`. */
export async function captureLoopback(dir: string, addresses: string[]): Promise<Capture> {
  const file = `${dir}/capture.bin`;
  const child = new Deno.Command("python3", {
    args: [new URL("./_loopback_capture.py", import.meta.url).pathname, file, ...addresses],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  if (!new TextDecoder().decode(first.value).startsWith("ready")) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error("The loopback capture did not start (python3 with a raw socket on lo)");
  }
  let stopped: Promise<Captured[]> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      child.kill("SIGTERM");
      await child.status;
      await reader.cancel();
      const raw = await Deno.readFile(file);
      const seen = addresses.map(() => ({ parts: [] as Uint8Array[], bytes: 0 }));
      const view = new DataView(raw.buffer);
      for (let at = 0; at + 6 <= raw.length;) {
        const index = raw[at];
        const length = view.getUint32(at + 2);
        const part = raw.subarray(at + 6, at + 6 + length);
        seen[index].parts.push(part);
        seen[index].bytes += part.length;
        at += 6 + length;
      }
      return seen.map(({ parts, bytes }) => {
        const data = new Uint8Array(bytes);
        let at = 0;
        for (const p of parts) at += (data.set(p, at), p.length);
        return { bytes, data };
      });
    })();
  return { stop, [Symbol.asyncDispose]: async () => void await stop() };
}

/** Whether `needle` occurs in `haystack`. */
export function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  for (let i = haystack.indexOf(first); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return false;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}

/**
 * The network key on disk and in the environment: `p2p keygen --output FILE` writes
 * one (mode 600, never over an existing file unless asked), and the tracker and
 * peers read it from `--network-key-file PATH` or from `P2P_NETWORK_KEY` (the key's
 * text itself). See `proto/network_key.ts` for the format.
 *
 * @module
 */
import { InvalidInputError, P2pError } from "../proto/errors.ts";
import { formatNetworkKey, parseNetworkKey } from "../proto/network_key.ts";

/** The environment variable that may hold the network key's text. */
export const NETWORK_KEY_ENV = "P2P_NETWORK_KEY";

/** Where a network key came from, for the start-up line. */
export type NetworkKeySource = "file" | "env" | "none";

/** A key file cannot be read or written. */
export class NetworkKeyFileError extends P2pError {
  constructor(message: string, options?: ErrorOptions) {
    super("network_key_file", message, options);
  }
}

/**
 * Reads the network key from `path`. Throws `NetworkKeyFileError` when the file is
 * missing or unreadable, `InvalidInputError` when its text is not a key. A file that
 * others than its owner may read is still used, with `warn` called once.
 */
export async function readNetworkKeyFile(
  path: string,
  warn: (message: string) => void = () => {},
): Promise<Uint8Array> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new NetworkKeyFileError(
      `Cannot read network key file '${path}': ${(err as Error).message}`,
      { cause: err },
    );
  }
  const st = await Deno.stat(path).catch(() => undefined);
  if (st?.mode != null && (st.mode & 0o077) !== 0) {
    warn(`network key file '${path}' may be read by other users (chmod 600 '${path}')`);
  }
  try {
    return parseNetworkKey(text);
  } catch (err) {
    if (err instanceof InvalidInputError) {
      throw new InvalidInputError(err.code, `Network key file '${path}': ${err.message}`, {
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Writes `key` to `path` with mode 600. Refuses to replace an existing file unless
 * `force`: losing a network key locks its members out of each other.
 */
export async function writeNetworkKeyFile(
  path: string,
  key: Uint8Array,
  opts: { force?: boolean } = {},
): Promise<void> {
  try {
    await Deno.writeTextFile(path, formatNetworkKey(key) + "\n", {
      mode: 0o600,
      createNew: !opts.force,
    });
    // An existing file keeps its mode on write: make it private in any case.
    await Deno.chmod(path, 0o600);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new NetworkKeyFileError(
        `Network key file '${path}' exists already (use --force to replace it)`,
        { cause: err },
      );
    }
    throw new NetworkKeyFileError(
      `Cannot write network key file '${path}': ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * The network key a tracker or peer runs with: from `file` when given, else from the
 * `P2P_NETWORK_KEY` environment variable, else none (an open network).
 */
export async function resolveNetworkKey(
  file: string | undefined,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  warn?: (message: string) => void,
): Promise<{ key?: Uint8Array; source: NetworkKeySource }> {
  if (file !== undefined) return { key: await readNetworkKeyFile(file, warn), source: "file" };
  const text = env(NETWORK_KEY_ENV);
  if (text !== undefined && text.trim() !== "") {
    try {
      return { key: parseNetworkKey(text), source: "env" };
    } catch (err) {
      if (err instanceof InvalidInputError) {
        throw new InvalidInputError(err.code, `${NETWORK_KEY_ENV}: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
  }
  return { source: "none" };
}

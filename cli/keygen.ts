/**
 * `p2p keygen`: makes a network key and prints it, or writes it to a file (mode 600).
 * Every tracker and peer of one network is then started with the same key
 * (`--network-key-file PATH` or `P2P_NETWORK_KEY`).
 *
 * @module
 */
import { formatNetworkKey, networkName, newNetworkKey } from "../proto/network_key.ts";
import { NETWORK_KEY_ENV, writeNetworkKeyFile } from "../lib/network_key_file.ts";

/** Options of `p2p keygen`. */
export interface KeygenOptions {
  /** Write the key here instead of printing it. */
  output?: string;
  /** Replace an existing `output` file. */
  force?: boolean;
}

/** Runs `p2p keygen`; `print` receives standard output's lines, `note` standard error's. */
export async function keygen(
  opts: KeygenOptions,
  print: (line: string) => void = console.log,
  note: (line: string) => void = console.error,
): Promise<void> {
  const key = newNetworkKey();
  const name = await networkName(key);
  if (opts.output === undefined) {
    print(formatNetworkKey(key));
    note(
      `network ${name}: give this key to every tracker and peer of the network, ` +
        `as ${NETWORK_KEY_ENV} or in a file (--network-key-file); keep it secret`,
    );
    return;
  }
  await writeNetworkKeyFile(opts.output, key, { force: opts.force });
  print(
    `network ${name}: key written to ${opts.output} (mode 600); start every tracker and ` +
      `peer of the network with --network-key-file ${opts.output}`,
  );
}

/**
 * Runs the `p2p` client commands as child processes in a folder of the test's own
 * (`get` saves into the current folder), with a pipe or, through util-linux `script`,
 * a pseudo-terminal as standard output, and against one peer (`--node`, `--token`).
 *
 * @module
 */
import { p2pCommand, REPO_ROOT } from "./_tracker_process.ts";

/** The end of a client command. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

/** How a client command runs. */
export interface CliOptions {
  /** Its current folder. */
  cwd: string;
  /** Its peer: `--node` and `--token` are added. */
  peer?: { http: string; token: string };
  /** More environment variables. */
  env?: Record<string, string>;
  /** Standard output (and input, error) on a pseudo-terminal, through `script`. */
  pty?: boolean;
  /** Killed after this (default 30 s). */
  timeoutMs?: number;
}

/** Where util-linux `script` is, when it is installed. */
export const SCRIPT = ["/usr/bin/script", "/bin/script"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** A word quoted for `sh -c`. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Starts a client command, its output piped, no input (see `CliOptions`). */
export function spawnCli(args: string[], opts: CliOptions): Deno.ChildProcess {
  const all = [
    ...args,
    ...(opts.peer ? ["--node", opts.peer.http, "--token", opts.peer.token] : []),
  ];
  let command = p2pCommand(all, undefined, new URL("main.ts", REPO_ROOT).pathname);
  if (opts.pty) {
    if (!SCRIPT) throw new Error("util-linux script is not installed");
    const line = [command.cmd, ...command.args].map(shellQuote).join(" ");
    command = { cmd: SCRIPT, args: ["-qec", line, "/dev/null"] };
  }
  return new Deno.Command(command.cmd, {
    args: command.args,
    cwd: opts.cwd,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
  }).spawn();
}

/** The end of a started client command. */
export async function ended(child: Deno.ChildProcess): Promise<CliRun> {
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    bytes: out.stdout,
  };
}

/** Runs a client command to its end. */
export function runCli(args: string[], opts: CliOptions): Promise<CliRun> {
  return ended(spawnCli(args, opts));
}

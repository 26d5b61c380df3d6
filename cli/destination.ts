/**
 * Where `p2p get` puts a payload's bytes, decided once before anything is downloaded,
 * and the writing of them: the one place that knows the rules, so that a later change
 * (the peer writing straight to the destination) touches only this module.
 *
 * - no `-o`: standard output when it is a pipe or a file, else the payload's name in
 *   the current folder (`<short id>.bin` when it has no usable name);
 * - `-o -`: standard output;
 * - `-o DIR` (an existing folder, or a path ending in `/`): the payload's name inside it;
 * - `-o FILE`: that file, whose folder must exist.
 *
 * An existing file (or a symlink, even a dangling one) is never replaced without
 * `--force`. The bytes go to `FILE.p2p-partial`, created fresh and exclusively
 * (`createNew`: never through an existing file or a symlink at that name), and are
 * then published under the final name: hard-linked, which fails rather than replace a
 * file that appeared meanwhile, or renamed over it with `--force`
 * (`publishDestination()`, which the peer uses too when it writes the file itself).
 *
 * ```ts
 * import { safeFileName } from "./destination.ts";
 *
 * console.assert(safeFileName("../../etc/passwd", "ab12") === "passwd");
 * console.assert(safeFileName(undefined, "ab12") === "ab12.bin");
 * ```
 *
 * @module
 */
import { shortId } from "../proto/control.ts";
import { P2pError } from "../proto/errors.ts";
import { DestinationRefusedError, publishDestination } from "../peer/linked_files.ts";

/** Suffix of the file a download is written to before it gets its name. */
export const PARTIAL_SUFFIX = ".p2p-partial";

/** Where the bytes go: standard output, or a file. */
export type Destination =
  | { kind: "stdout" }
  | {
    kind: "file";
    /** The path written. */
    path: string;
    /** The path as the summary prints it (`./big.bin`). */
    shown: string;
    /** Whether an existing file may be replaced. */
    force: boolean;
  };

/** A destination that cannot be used: one line, exit status 1. */
export class DestinationError extends P2pError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** What `resolveDestination()` decides from. */
export interface DestinationInput {
  /** `-o`, if given. */
  output?: string;
  /** `--force`. */
  force?: boolean;
  /** The payload's name, if it has one. */
  name?: string;
  payloadId: string;
  /** Whether standard output is a terminal (default: asks Deno). */
  stdoutIsTerminal?: boolean;
}

/**
 * A file name made of the last part of a payload's name, without control characters;
 * `<short id>.bin` when nothing usable is left (no name, `.`, `..`).
 */
export function safeFileName(name: string | undefined, payloadId: string): string {
  const last = (name ?? "").split(/[\\/]/).pop()!;
  const base = [...last].filter((ch) => ch >= " " && ch !== "\x7f").join("").trim();
  if (base === "" || base === "." || base === "..") return `${shortId(payloadId)}.bin`;
  return base.slice(0, 255);
}

/** The kind of what is at `path` (not following a symlink), or undefined. */
async function lstatKind(path: string): Promise<"dir" | "file" | "other" | undefined> {
  try {
    const info = await Deno.lstat(path);
    return info.isDirectory ? "dir" : info.isFile ? "file" : "other";
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Whether `path` is a folder, following a symlink. */
async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The folder part of a path (`.` when there is none). */
function folderOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i > 0 ? path.slice(0, i) : i === 0 ? "/" : ".";
}

/** How the summary prints a path: a bare name as `./name`. */
function shown(path: string): string {
  return path.includes("/") ? path : `./${path}`;
}

/**
 * Decides where the bytes go (see the module notes); throws `DestinationError` for a
 * missing folder (`no_folder`) or an existing file without `--force` (`exists`).
 */
export async function resolveDestination(input: DestinationInput): Promise<Destination> {
  const { output, force = false } = input;
  const terminal = input.stdoutIsTerminal ?? Deno.stdout.isTerminal();
  if (output === "-" || (output === undefined && !terminal)) return { kind: "stdout" };
  const name = safeFileName(input.name, input.payloadId);
  let path: string;
  if (output === undefined) {
    path = name;
  } else if (output.endsWith("/") || await isDir(output)) {
    if (!await isDir(output)) {
      throw new DestinationError("no_folder", `The folder '${output}' does not exist`);
    }
    path = `${output.replace(/\/+$/, "")}/${name}`;
  } else {
    path = output;
    const folder = folderOf(path);
    if (!await isDir(folder)) {
      throw new DestinationError(
        "no_folder",
        `The folder '${folder}' does not exist; create it first or choose another -o`,
      );
    }
  }
  const kind = await lstatKind(path);
  if (kind === "dir") {
    throw new DestinationError("exists", `'${shown(path)}' is a folder; choose another -o`);
  }
  if (kind !== undefined && !force) {
    throw new DestinationError(
      "exists",
      `'${shown(path)}' exists; add --force to replace it, or choose another -o`,
    );
  }
  return { kind: "file", path, shown: shown(path), force };
}

/** Whether bytes look binary: a NUL, or not UTF-8. */
export function looksBinary(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return true;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: true });
    return false;
  } catch {
    return true;
  }
}

/**
 * Writes `content` to the destination. To standard output, binary bytes are refused
 * when it is a terminal (`binary_to_terminal`, checked on the first bytes, before any
 * is written). To a file: through `PATH.p2p-partial`, created exclusively (a stale
 * partial file of an earlier run, or a symlink there, is removed first, never written
 * through), then published (see the module notes). The partial file is removed when
 * anything fails.
 */
export async function writeDestination(
  dest: Destination,
  content: ReadableStream<Uint8Array>,
  stdoutIsTerminal = Deno.stdout.isTerminal(),
): Promise<void> {
  if (dest.kind === "stdout") {
    const reader = content.getReader();
    const first = await reader.read();
    if (!first.done && stdoutIsTerminal && looksBinary(first.value)) {
      await reader.cancel();
      throw new DestinationError(
        "binary_to_terminal",
        "Not writing binary data to the terminal: pipe it (p2p get ID | …) or use -o FILE",
      );
    }
    const w = Deno.stdout.writable.getWriter();
    try {
      if (!first.done) await w.write(first.value);
      for (;;) {
        const next = await reader.read();
        if (next.done) break;
        await w.write(next.value);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
      await reader.cancel().catch(() => undefined);
      throw new DestinationError(
        "stdout_closed",
        "Standard output was closed before the end (the reading command stopped early)",
        { cause: err },
      );
    } finally {
      w.releaseLock();
    }
    return;
  }
  const partial = dest.path + PARTIAL_SUFFIX;
  const file = await openFresh(partial);
  try {
    await content.pipeTo(file.writable);
    await publish(partial, dest.path, dest.force);
  } catch (err) {
    await Deno.remove(partial).catch(() => undefined);
    if (err instanceof P2pError) throw err;
    throw new DestinationError(
      "write_failed",
      `Cannot write '${dest.shown}': ${err instanceof Error ? err.message : err}`,
      { cause: err },
    );
  }
}

/** Creates `path` exclusively; a file or symlink already there (a stale partial) is removed first. */
async function openFresh(path: string): Promise<Deno.FsFile> {
  const open = () => Deno.open(path, { write: true, createNew: true, mode: 0o644 });
  try {
    return await open();
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) {
      throw new DestinationError(
        "write_failed",
        `Cannot create '${path}': ${err instanceof Error ? err.message : err}`,
        { cause: err },
      );
    }
  }
  // Removing a symlink removes the link, not its target.
  if (await lstatKind(path) === "dir") {
    throw new DestinationError("exists", `'${path}' is a folder; remove it or choose another -o`);
  }
  await Deno.remove(path);
  return await open();
}

/** Gives `partial` its final name: without `force`, never over a file that appeared meanwhile. */
async function publish(partial: string, path: string, force: boolean): Promise<void> {
  try {
    await publishDestination(partial, path, force, shown(path));
  } catch (err) {
    if (!(err instanceof DestinationRefusedError)) throw err;
    throw new DestinationError(err.code, err.message, { cause: err });
  }
}

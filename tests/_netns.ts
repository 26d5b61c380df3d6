/**
 * Test helpers that build a real, closed virtual LAN out of Linux network namespaces,
 * for tests of LAN discovery. `createLan({ hosts: 3 })` makes one "switch" namespace
 * holding a bridge and one namespace per host, each joined to the bridge by a veth
 * pair whose host end is `eth0`, with addresses `.1`, `.2`, … of a /28 inside
 * 10.77.0.0/16. Nothing links the LAN to the root namespace and no host has a default
 * route, so no packet can leave it. `netnsUnavailable()` says why a LAN cannot be built
 * here (not root, no `ip` or `arp`, no namespaces), so tests can be ignored instead.
 *
 * ```ts
 * await using lan = await createLan({ hosts: 3 });
 * const [h1, , h3] = lan.hosts;
 * const server = lan.spawn(h3, ["some-server", "--host", h3.ip]);
 * const out = await lan.exec(h1, ["some-client", h3.ip]);
 * ```
 *
 * Namespaces are named `p2pt<pid>-<tag>-<n>-sw` and `…-h1`, `…-h2`: the pid finds the
 * leftovers of crashed runs (deleted by the next `createLan()`), the random tag keeps
 * test files apart, which `deno test --parallel` runs in one process, and the counter
 * keeps the LANs of one file apart.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { errorMessage } from "../proto/errors.ts";

/** One host of a LAN. */
export interface LanHost {
  /** Its network namespace, for `ip netns exec NAME` or `ip -n NAME`. */
  name: string;
  /** Its address on `eth0`, e.g. `10.77.0.1`. */
  ip: string;
}

/** Options of `createLan()`. */
export interface CreateLanOptions {
  /** How many hosts, from 1 to the subnet's size less 2 (14 in a /28). */
  hosts: number;
  /** An aligned subnet inside 10.77.0.0/16, from /16 to /30; `10.77.0.0/28` by default. */
  subnet?: string;
}

/** Options of `Lan.exec()`. */
export interface LanExecOptions {
  /** Written to the command's stdin, which is then closed; no stdin when undefined. */
  stdin?: string | Uint8Array;
  /** More environment variables; the rest is inherited. */
  env?: Record<string, string>;
  cwd?: string | URL;
  /** Kills the command (SIGTERM) and rejects; 30 s by default. */
  signal?: AbortSignal;
}

/** Options of `Lan.spawn()`. */
export interface LanSpawnOptions {
  /** `"null"` by default. */
  stdin?: "piped" | "null";
  /** More environment variables; the rest is inherited. */
  env?: Record<string, string>;
  cwd?: string | URL;
}

/** How a command ended, with everything it printed. */
export interface LanExecResult {
  code: number;
  success: boolean;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** A virtual LAN of network namespaces; `await using` tears it down. */
export interface Lan extends AsyncDisposable {
  /** The hosts, in address order: `hosts[0]` is `h1` at `.1`. */
  hosts: LanHost[];
  /** The LAN's subnet, e.g. `10.77.0.0/28`. */
  cidr: string;
  /** The namespace of the switch: a bridge `br0` without an address, ports `v1`, `v2`, …. */
  switchName: string;
  /** Runs `argv` inside `host`'s namespace to its end; does not throw on a failed exit. */
  exec(host: LanHost, argv: string[], opts?: LanExecOptions): Promise<LanExecResult>;
  /**
   * Starts `argv` inside `host`'s namespace with stdout and stderr piped. `ip netns exec`
   * execs the command, so the child is the real process and signals reach it.
   */
  spawn(host: LanHost, argv: string[], opts?: LanSpawnOptions): Deno.ChildProcess;
  /**
   * Stops the processes started with `exec()` and `spawn()` that still run (SIGTERM,
   * then SIGKILL after a short grace), kills anything else left in the namespaces and
   * deletes them, which deletes their veths. Idempotent.
   */
  destroy(): Promise<void>;
}

/** The leading part of every namespace name this helper makes; group 1 is the pid. */
const NAME_PREFIX = /^p2pt(\d+)-/;
/** Tells the LANs of this module instance from those of other test files in the process. */
const TAG = Array.from(
  crypto.getRandomValues(new Uint8Array(2)),
  (b) => b.toString(16).padStart(2, "0"),
).join("");
const DEFAULT_SUBNET = "10.77.0.0/28";
/** How long destroy() waits after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 1_000;
const EXEC_TIMEOUT_MS = 30_000;

let lanCounter = 0;
/** LANs built and not yet destroyed, for the cleanup on unload. */
const liveLans = new Set<{ teardownSync(): void }>();
let unloadHooked = false;

/**
 * Runs `ip` with the space-separated arguments of `line` (the names this helper makes
 * have no spaces) and returns its stdout; throws naming the command and its stderr.
 */
async function ip(line: string): Promise<string> {
  const args = line.split(" ");
  const out = await new Deno.Command("ip", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim();
    throw new Error(
      `Command 'ip ${line}' failed with exit code ${out.code}: ${stderr}`,
    );
  }
  return stdout;
}

/** `ip(line)`, synchronously and without throwing: for the cleanup on unload. */
function ipSync(line: string): string {
  try {
    const out = new Deno.Command("ip", {
      args: line.split(" "),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout) : "";
  } catch {
    return "";
  }
}

/** The names of all network namespaces, from `ip netns list`. */
export async function listNetns(): Promise<string[]> {
  const out = await ip("netns list");
  return out.split("\n").map((line) => line.split(" ")[0]).filter((name) => name !== "");
}

function parsePids(out: string): number[] {
  return out.split("\n").filter((line) => /^\d+$/.test(line)).map(Number);
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // It died on its own meanwhile.
  }
}

/** SIGKILLs every process in namespace `name`, then deletes it. */
async function killAndDelete(name: string): Promise<void> {
  for (const pid of parsePids(await ip(`netns pids ${name}`))) killQuietly(pid);
  await ip(`netns del ${name}`);
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Deletes the namespaces that runs which no longer live left behind. */
async function deleteLeftovers(): Promise<void> {
  const stale = (await listNetns()).filter((name) => {
    const m = NAME_PREFIX.exec(name);
    return m !== null && Number(m[1]) !== Deno.pid && !pidAlive(Number(m[1]));
  });
  await Promise.all(stale.map(async (name) => {
    try {
      await killAndDelete(name);
    } catch (e) {
      // Another test file of a run may be deleting the same leftover right now.
      if ((await listNetns()).includes(name)) throw e;
    }
  }));
}

/** Runs `cmd --version`-like `args`; the reason it cannot run, or undefined. */
async function missingCommand(
  cmd: string,
  args: string[],
  pkg: string,
): Promise<string | undefined> {
  try {
    await new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" }).output();
    return undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return `no '${cmd}' command (install ${pkg})`;
    return `cannot run '${cmd}': ${e}`;
  }
}

/** Builds and deletes a throwaway namespace with a bridge and a veth pair in it. */
async function probe(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `network namespaces need Linux, not '${Deno.build.os}'`;
  const uid = Deno.uid();
  if (uid !== 0) return `not root (uid ${uid})`;
  const missing = await missingCommand("ip", ["-V"], "iproute2") ??
    await missingCommand("arp", ["-V"], "net-tools");
  if (missing !== undefined) return missing;
  const name = `p2pt${Deno.pid}-${TAG}-probe`;
  try {
    await ip(`netns add ${name}`);
  } catch (e) {
    return errorMessage(e);
  }
  try {
    await ip(`-n ${name} link add br0 type bridge`);
    await ip(`-n ${name} link add v1 type veth peer name v2`);
    await ip(`netns exec ${name} ip link set lo up`);
    return undefined;
  } catch (e) {
    return errorMessage(e);
  } finally {
    await ip(`netns del ${name}`);
  }
}

let availability: Promise<string | undefined> | undefined;

/**
 * Why no LAN can be built here, e.g. `not root (uid 1000)` or `no 'arp' command (install
 * net-tools)`, or undefined when one can. Finds out once, by building and deleting a
 * throwaway namespace with a bridge and a veth pair.
 */
export function netnsUnavailable(): Promise<string | undefined> {
  availability ??= probe().catch((e) => `cannot probe network namespaces: ${e}`);
  return availability;
}

/** The only range test LANs may use. */
const TEST_RANGE = ipaddr.IPv4.parseCIDR("10.77.0.0/16");

/** The base address and prefix length of `subnet`; throws RangeError unless valid. */
function parseSubnet(subnet: string): { base: ipaddr.IPv4; bits: number } {
  const [addr = "", ...rest] = subnet.split("/");
  if (
    !ipaddr.IPv4.isValidCIDR(subnet) || !ipaddr.IPv4.isValidFourPartDecimal(addr) ||
    rest.length !== 1
  ) {
    throw notASubnet(subnet);
  }
  const [base, bits] = ipaddr.IPv4.parseCIDR(subnet);
  if (bits < 16 || bits > 30) throw notASubnet(subnet);
  if (
    !base.match(TEST_RANGE) ||
    ipaddr.IPv4.networkAddressFromCIDR(subnet).toString() !== base.toString()
  ) {
    throw new RangeError(
      `Cannot create LAN: subnet '${subnet}' is not an aligned subnet inside 10.77.0.0/16`,
    );
  }
  return { base, bits };
}

function notASubnet(subnet: string): RangeError {
  return new RangeError(
    `Cannot create LAN: subnet '${subnet}' is not an IPv4 subnet from /16 to /30`,
  );
}

/** The address `n` places after `base`. */
function addressAfter(base: ipaddr.IPv4, n: number): string {
  const value = base.toByteArray().reduce((v, b) => v * 256 + b, 0) + n;
  return ipaddr.IPv4.parse(String(value)).toString();
}

/** A child started in the LAN, with whether it has exited. */
interface Tracked {
  child: Deno.ChildProcess;
  exited: boolean;
}

/**
 * Builds a LAN of `opts.hosts` namespaces on one bridge and resolves once every address
 * is set. Deletes the leftovers of crashed runs first. Throws a RangeError for bad
 * options, and an Error naming the failed command and its stderr when a step fails,
 * after deleting what it made.
 */
export async function createLan(opts: CreateLanOptions): Promise<Lan> {
  const subnet = opts.subnet ?? DEFAULT_SUBNET;
  const { base, bits } = parseSubnet(subnet);
  const maxHosts = 2 ** (32 - bits) - 2;
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > maxHosts) {
    throw new RangeError(
      `Cannot create LAN: '${opts.hosts}' hosts do not fit in '${subnet}' (1 to ${maxHosts})`,
    );
  }
  const reason = await netnsUnavailable();
  if (reason !== undefined) throw new Error(`Cannot create LAN: ${reason}`);
  await deleteLeftovers();

  const prefix = `p2pt${Deno.pid}-${TAG}-${++lanCounter}-`;
  const switchName = `${prefix}sw`;
  const hosts: LanHost[] = Array.from({ length: opts.hosts }, (_, i) => ({
    name: `${prefix}h${i + 1}`,
    ip: addressAfter(base, i + 1),
  }));
  /** Namespaces made so far: what destroy() deletes. */
  const made: string[] = [];
  const children = new Set<Tracked>();
  let destroyed: Promise<void> | undefined;

  const track = (child: Deno.ChildProcess): void => {
    const entry: Tracked = { child, exited: false };
    children.add(entry);
    child.status.then(() => {
      entry.exited = true;
    });
  };

  const hostOf = (host: LanHost): LanHost => {
    const found = hosts.find((h) => h.name === host.name);
    if (found === undefined) {
      throw new TypeError(`Cannot run in host '${host.name}': it is not on LAN '${prefix}*'`);
    }
    if (destroyed !== undefined) {
      throw new Error(`Cannot run in host '${host.name}': its LAN is destroyed`);
    }
    return found;
  };

  const stopChildren = async (): Promise<void> => {
    const running = [...children].filter((c) => !c.exited);
    for (const { child } of running) {
      try {
        child.kill("SIGTERM");
      } catch {
        // It exited meanwhile.
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, KILL_GRACE_MS));
    await Promise.race([Promise.all(running.map((c) => c.child.status)), grace]);
    clearTimeout(timer);
    for (const c of running) {
      if (c.exited) continue;
      try {
        c.child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }
    // Collecting every status closes the children's resources; pipes nobody reads are
    // cancelled so that nothing is left open.
    await Promise.all([...children].map(async ({ child }) => {
      await child.status;
      for (const stream of [child.stdout, child.stderr]) {
        try {
          if (!stream.locked) await stream.cancel();
        } catch {
          // Not piped.
        }
      }
    }));
  };

  const entry = {
    teardownSync(): void {
      for (const { child, exited } of children) {
        if (exited) continue;
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }
      for (const name of made) {
        for (const pid of parsePids(ipSync(`netns pids ${name}`))) killQuietly(pid);
        ipSync(`netns del ${name}`);
      }
    },
  };

  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      try {
        await stopChildren();
        // Hosts first: deleting one deletes its veth pair, and so the switch's port.
        const settled = [
          ...await Promise.allSettled(made.filter((n) => n !== switchName).map(killAndDelete)),
          ...await Promise.allSettled(made.filter((n) => n === switchName).map(killAndDelete)),
        ];
        const errors = settled.flatMap((s) => s.status === "rejected" ? [s.reason] : []);
        if (errors.length === 1) throw errors[0];
        if (errors.length > 1) {
          throw new AggregateError(errors, `Cannot destroy LAN '${prefix}*' completely`);
        }
      } finally {
        liveLans.delete(entry);
      }
    })();
    return destroyed;
  };

  if (!unloadHooked) {
    unloadHooked = true;
    // Best effort for LANs a test forgot: a crashed run's are deleted by the next one.
    globalThis.addEventListener("unload", () => {
      for (const lan of liveLans) lan.teardownSync();
    });
  }
  liveLans.add(entry);

  try {
    await ip(`netns add ${switchName}`);
    made.push(switchName);
    const sw = `-n ${switchName}`;
    await ip(`${sw} link add br0 type bridge forward_delay 0 stp_state 0`);
    // Up before its ports, so that each port forwards as soon as its carrier comes.
    await ip(`${sw} link set br0 up`);
    // allSettled, not all: when one host fails, the others' steps must end before
    // destroy() reads `made`, or a namespace added later would be left behind.
    const settled = await Promise.allSettled(hosts.map(async (host, i) => {
      await ip(`netns add ${host.name}`);
      made.push(host.name);
      const port = `v${i + 1}`;
      await ip(`${sw} link add ${port} type veth peer name eth0 netns ${host.name}`);
      await ip(`${sw} link set ${port} master br0 up`);
      const h = `-n ${host.name}`;
      await ip(`${h} addr add ${host.ip}/${bits} dev eth0`);
      await ip(`${h} link set eth0 up`);
      await ip(`${h} link set lo up`);
    }));
    const failed = settled.find((s) => s.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  } catch (e) {
    await destroy().catch(() => {});
    throw e;
  }

  return {
    hosts,
    cidr: `${base}/${bits}`,
    switchName,
    async exec(host, argv, execOpts = {}): Promise<LanExecResult> {
      const { name } = hostOf(host);
      const signal = execOpts.signal ?? AbortSignal.timeout(EXEC_TIMEOUT_MS);
      const args = ["netns", "exec", name, ...argv];
      const child = new Deno.Command("ip", {
        args,
        env: execOpts.env,
        cwd: execOpts.cwd,
        signal,
        stdin: execOpts.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      track(child);
      const output = child.output();
      if (execOpts.stdin !== undefined) {
        const data = typeof execOpts.stdin === "string"
          ? new TextEncoder().encode(execOpts.stdin)
          : execOpts.stdin;
        const writer = child.stdin.getWriter();
        try {
          await writer.write(data);
          await writer.close();
        } catch {
          // It exited without reading everything: its status says the rest.
        }
      }
      const out = await output;
      const result: LanExecResult = {
        code: out.code,
        success: out.success,
        signal: out.signal,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
      if (signal.aborted) {
        throw new Error(
          `Command 'ip ${args.join(" ")}' was stopped (${signal.reason}): ${result.stderr}`,
          { cause: signal.reason },
        );
      }
      return result;
    },
    spawn(host, argv, spawnOpts = {}): Deno.ChildProcess {
      const { name } = hostOf(host);
      const child = new Deno.Command("ip", {
        args: ["netns", "exec", name, ...argv],
        env: spawnOpts.env,
        cwd: spawnOpts.cwd,
        stdin: spawnOpts.stdin ?? "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      track(child);
      return child;
    },
    destroy,
    [Symbol.asyncDispose]: destroy,
  };
}

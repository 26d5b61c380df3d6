/**
 * The owner's token of a peer's control API: 32 random bytes in base64url, made at
 * the peer's first start in `control.token` in its data directory (mode 600) and kept
 * across restarts. A request shows it as `Authorization: Bearer <token>` or as the
 * `p2p_token` cookie that the web app gets from a one-time login link
 * (`/_p2p/login?once=…`, valid once, for 10 minutes). `ControlAuth` checks both, in
 * constant time, and makes and redeems the one-time codes.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { timingSafeEqual } from "node:crypto";
import { toBase64Url } from "../proto/ids.ts";
import { BoundedMap } from "../lib/bounded_map.ts";

/** The token file's name in a peer's data directory. */
export const TOKEN_FILE = "control.token";
/** The cookie that carries the token for the web app. */
export const TOKEN_COOKIE = "p2p_token";
/** How long a one-time login code is valid, in ms. */
export const LOGIN_CODE_TTL_MS = 10 * 60_000;
/** One-time codes kept at once: the oldest goes first. */
const MAX_LOGIN_CODES = 16;
/** What a token looks like: 32 bytes in base64url, no padding. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** 32 random bytes in base64url. */
export function randomToken(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/** Whether `value` has the shape of a token (it says nothing of which peer's). */
export function isTokenShaped(value: string): boolean {
  return TOKEN_SHAPE.test(value);
}

/**
 * The peer's token from `dataDir/control.token`, made (mode 600) when the file does
 * not exist; a file readable by others is made private again. Throws a `TypeError`
 * when the file holds something else than a token.
 */
export async function loadControlToken(dataDir: string): Promise<{ token: string; path: string }> {
  const path = `${dataDir}/${TOKEN_FILE}`;
  try {
    const token = randomToken();
    await Deno.writeTextFile(path, `${token}\n`, { createNew: true, mode: 0o600 });
    return { token, path };
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const token = (await Deno.readTextFile(path)).trim();
  if (!isTokenShaped(token)) {
    throw new TypeError(`Token file '${path}' holds no p2p token; remove it to make a new one`);
  }
  if (Deno.build.os !== "windows" && ((await Deno.stat(path)).mode ?? 0) & 0o077) {
    await Deno.chmod(path, 0o600);
  }
  return { token, path };
}

/** Whether two strings are equal, in a time that does not depend on where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The value of cookie `name` in a `Cookie` header, if any. */
export function cookieValue(cookie: string | null | undefined, name: string): string | undefined {
  for (const part of (cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Options of `ControlAuth`. */
export interface ControlAuthOptions {
  /** The clock, in ms (default `Date.now`). */
  now?: () => number;
}

/** Checks the owner's token on requests, and makes and redeems one-time login codes. */
export class ControlAuth {
  readonly #token: string;
  readonly #now: () => number;
  /** Outstanding one-time codes and when each expires. */
  readonly #codes = new BoundedMap<string, number>(MAX_LOGIN_CODES);

  constructor(token: string, opts: ControlAuthOptions = {}) {
    if (!isTokenShaped(token)) throw new TypeError("A control token must be 32 bytes in base64url");
    this.#token = token;
    this.#now = opts.now ?? Date.now;
  }

  /** The token a request shows: its bearer token, else its `p2p_token` cookie. */
  static shown(headers: Headers): string | undefined {
    const auth = headers.get("authorization");
    const bearer = auth && /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
    return bearer || cookieValue(headers.get("cookie"), TOKEN_COOKIE);
  }

  /** Whether `token` is the owner's. */
  accepts(token: string | undefined): boolean {
    return token !== undefined && sameSecret(token, this.#token);
  }

  /** A new one-time login code, valid for `LOGIN_CODE_TTL_MS`. */
  loginCode(): string {
    return this.loginLink().code;
  }

  /** A new one-time login code and when it expires (ms since the epoch). */
  loginLink(): { code: string; expiresAt: number } {
    this.#prune();
    const code = randomToken();
    const expiresAt = this.#now() + LOGIN_CODE_TTL_MS;
    this.#codes.set(code, expiresAt);
    return { code, expiresAt };
  }

  /**
   * Redeems a one-time code: the token when the code is outstanding and unexpired
   * (it is then spent), else undefined.
   */
  redeem(code: string): string | undefined {
    this.#prune();
    for (const [known] of this.#codes) {
      if (sameSecret(known, code)) {
        this.#codes.delete(known);
        return this.#token;
      }
    }
    return undefined;
  }

  #prune(): void {
    const now = this.#now();
    for (const [code, expires] of this.#codes) if (expires <= now) this.#codes.delete(code);
  }
}

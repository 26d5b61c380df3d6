/**
 * What both Hono apps (the tracker's API and the peer's control API) need at their
 * edge, defined once: path parameters checked against a zod schema, query and JSON
 * validation that throws the project's own `InvalidInputError` (also as a hook for
 * `@hono/zod-validator`), body limits over Hono's `bodyLimit` that tell a body too
 * large from one that broke off, and one `onError` / `notFound` pair that turns any
 * `P2pError` or Hono `HTTPException` into the JSON error body of `proto/errors.ts`.
 *
 * ```ts
 * import { Hono } from "hono";
 * import { z } from "zod";
 * import { errorHandler, notFoundHandler, param } from "./http_api.ts";
 *
 * const app = new Hono();
 * app.get("/items/:id", (c) => c.json({ id: param(c, "id", z.string().regex(/^\d+$/), "Item id") }));
 * app.notFound(notFoundHandler());
 * app.onError(errorHandler());
 * const res = await app.request("/items/x");
 * console.assert(res.status === 400 && (await res.json()).error.code === "invalid_id");
 * ```
 *
 * @module
 */
import type { Context, ErrorHandler, MiddlewareHandler, NotFoundHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import {
  errorMessage,
  formatZodError,
  InvalidInputError,
  NotFoundError,
  P2pError,
  zodIssues,
} from "../proto/errors.ts";
import type { ErrorBody } from "../proto/error_body.ts";

/** A path parameter that must match `schema`; `what` names it in the error (`Payload id`). */
export function param<T extends z.ZodType<string>>(
  c: Context,
  name: string,
  schema: T,
  what: string,
): z.infer<T> {
  const value = c.req.param(name) ?? "";
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidInputError(
      "invalid_id",
      `${what} '${value}' ${parsed.error.issues[0]?.message ?? "is not valid"}`,
    );
  }
  return parsed.data;
}

/** The query string checked against `schema`; failures throw `InvalidInputError` (`invalid_query`). */
export function query<T extends z.ZodType>(c: Context, schema: T): z.infer<T> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) {
    throw new InvalidInputError("invalid_query", formatZodError(parsed.error), {
      issues: zodIssues(parsed.error),
    });
  }
  return parsed.data;
}

/** A value checked against `schema`; failures throw `InvalidInputError` with `code`. */
export function validate<T extends z.ZodType>(
  schema: T,
  value: unknown,
  code = "invalid_body",
  prefix = "",
): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidInputError(code, prefix + formatZodError(parsed.error), {
      issues: zodIssues(parsed.error),
    });
  }
  return parsed.data;
}

/** One line naming every failed field, quoted: `'port' Invalid input; 'name' Too big`. */
export function issuesLine(error: z.ZodError): string {
  return zodIssues(error).map((i) => `'${i.path}' ${i.message}`).join("; ");
}

/**
 * An `InvalidInputError` for a zod failure whose message is `prefix` and every issue
 * (`issuesLine()`), for APIs whose answers name each failed field.
 */
export function invalidInput(code: string, prefix: string, error: z.ZodError): InvalidInputError {
  return new InvalidInputError(code, prefix + issuesLine(error), { issues: zodIssues(error) });
}

/** A hook for `@hono/zod-validator` that throws `invalidInput(code, prefix, error)`. */
export function listingHook(code: string, prefix: string) {
  return (result: { success: true } | { success: false; error: z.core.$ZodError }): void => {
    if (!result.success) throw invalidInput(code, prefix, new z.ZodError(result.error.issues));
  };
}

/**
 * The request body as JSON checked against `schema`: a client that hangs up mid-body
 * is `incomplete_body`, text that is not UTF-8 JSON is `bad_json`, a value that fails
 * the schema is `invalid_body` naming every issue (all 400). Any content type is read.
 */
export async function jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const bytes = await readBody(() => c.req.arrayBuffer());
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new InvalidInputError(
      "bad_json",
      `Request body is not valid JSON: ${errorMessage(cause)}`,
    );
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw invalidInput("invalid_body", "Request body is invalid: ", parsed.error);
  }
  return parsed.data;
}

/** Runs one read of a request body; a client that hangs up mid-body is a 400, not a failure. */
export async function readBody<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (cause) {
    if (cause instanceof P2pError) throw cause;
    throw new InvalidInputError(
      "incomplete_body",
      `Request body ended early: ${errorMessage(cause)}`,
      { cause },
    );
  }
}

/**
 * Hono's `bodyLimit` with this project's errors: a body over `maxSize` bytes, declared
 * or streamed, throws `tooLarge()`; a client that hangs up mid-body is a 400
 * `incomplete_body` (see `readBody()`), not a failure of the server.
 */
export function limitBody(maxSize: number, tooLarge: () => P2pError): MiddlewareHandler {
  const limit = bodyLimit({
    maxSize,
    onError: () => {
      throw tooLarge();
    },
  });
  return (c, next) => readBody(() => limit(c, next)).then(() => {});
}

/** The JSON error body of an error. */
export function errorBody(code: string, message: string, issues?: ErrorBody["error"]["issues"]) {
  return { error: { code, message, ...(issues ? { issues } : {}) } } satisfies ErrorBody;
}

/** Codes for the statuses Hono's own middleware raises as `HTTPException`. */
const HTTP_CODES: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  408: "timeout",
  413: "too_large",
  415: "unsupported_media_type",
  429: "too_many_requests",
};

/** What an edge answers for an error: its status, its JSON body, and whether it was expected. */
export interface MappedError {
  status: ContentfulStatusCode;
  body: ErrorBody;
  /** False for failures that are not the caller's doing (storage, bugs): log those. */
  expected: boolean;
}

/**
 * Maps any thrown value to an answer: a `P2pError` with a status keeps its code and
 * status, an `HTTPException` gets the code of its status, anything else is a 503
 * `unavailable` (or `fallback`'s code and status).
 */
export function mapError(
  err: unknown,
  fallback: { status: ContentfulStatusCode; code: string; prefix?: string } = {
    status: 503,
    code: "unavailable",
  },
): MappedError {
  if (err instanceof P2pError && err.status !== undefined) {
    const issues = err instanceof InvalidInputError ? err.issues : undefined;
    return {
      status: err.status as ContentfulStatusCode,
      body: errorBody(err.code, err.message, issues),
      expected: true,
    };
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const code = err.cause instanceof P2pError
      ? err.cause.code
      : HTTP_CODES[status] ?? "http_error";
    const message = err.message ||
      (status === 413
        ? "Request body is too large"
        : `Request refused (${code.replaceAll("_", " ")})`);
    return { status, body: errorBody(code, message), expected: true };
  }
  return {
    status: fallback.status,
    body: errorBody(
      err instanceof P2pError ? err.code : fallback.code,
      (fallback.prefix ?? "") + errorMessage(err),
    ),
    expected: false,
  };
}

/** A `notFound` handler answering `404 not_found` in the shared error body. */
export function notFoundHandler(): NotFoundHandler {
  return (c) => {
    const err = new NotFoundError("not_found", `No route for '${c.req.method} ${c.req.path}'`);
    return c.json(errorBody(err.code, err.message), 404);
  };
}

/**
 * An `onError` handler: answers with `mapError()`; `report` sees every error with
 * its mapping (to log unexpected ones, or record activity).
 */
export function errorHandler(
  report?: (err: Error, mapped: MappedError, c: Context) => void,
  fallback?: Parameters<typeof mapError>[1],
): ErrorHandler {
  return (err, c) => {
    const mapped = mapError(err, fallback);
    report?.(err, mapped, c);
    return c.json(mapped.body, mapped.status);
  };
}

/**
 * What both Hono apps (the tracker's API and the peer's control API) need at their
 * edge, defined once: path parameters checked against a zod schema, query and JSON
 * validation that throws the project's own `InvalidInputError`, and one `onError` /
 * `notFound` pair that turns any `P2pError` or Hono `HTTPException` into the JSON
 * error body of `proto/errors.ts`.
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
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import {
  type ErrorBody,
  errorMessage,
  formatZodError,
  InvalidInputError,
  NotFoundError,
  P2pError,
  zodIssues,
} from "../proto/errors.ts";

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

/** A hook for `@hono/zod-validator`: a failed check throws `InvalidInputError`. */
export function validationHook(code = "invalid_body") {
  return (result: { success: boolean; error?: unknown }): void => {
    if (!result.success) {
      const error = result.error as z.ZodError;
      throw new InvalidInputError(code, formatZodError(error), { issues: zodIssues(error) });
    }
  };
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

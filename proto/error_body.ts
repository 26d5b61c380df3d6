/**
 * The JSON error body every HTTP answer of the tracker and the control API uses, as a
 * zod schema. Apart from `errors.ts` so that code which only raises errors (the HTTP
 * relay library, say) does not load zod.
 *
 * @module
 */
import { z } from "zod";

/** Every JSON error answer of the tracker and the control API: `{ error: { code, message, issues? } }`. */
export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
/** Every JSON error answer. */
export type ErrorBody = z.infer<typeof ErrorBody>;

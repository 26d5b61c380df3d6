/**
 * Activity records: what a tracker or peer did, one JSON object per event, kept in
 * order by a increasing `id`. The same shape is served by the tracker's
 * `GET /activity`, written to JSON-lines logs, and answered to LOG? requests.
 *
 * @module
 */
import { z } from "zod";

/** One activity record: `id` orders records, `type` is dotted (`peer.register`, `error`). */
export const ActivityRecord = z.looseObject({
  id: z.number().int().nonnegative(),
  ts: z.string(),
  type: z.string().min(1),
});
/** One activity record. */
export type ActivityRecord = z.infer<typeof ActivityRecord>;

/** Query of an activity log: records with `id > since`, at most `limit`, `type` prefix. */
export const ActivityQuery = z.object({
  since: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  type: z.string().min(1).max(64).optional(),
});
/** Query of an activity log. */
export type ActivityQuery = z.infer<typeof ActivityQuery>;

/** A page of activity: `next` is the `since` of the following page, or null at the end. */
export const ActivityPage = z.object({
  records: z.array(ActivityRecord),
  next: z.number().int().nullable(),
});
/** A page of activity. */
export type ActivityPage = z.infer<typeof ActivityPage>;

/** Whether a record's type matches a filter: equal, or a dotted prefix (`peer` ⊃ `peer.expire`). */
export function typeMatches(type: string, filter: string | undefined): boolean {
  return filter === undefined || type === filter || type.startsWith(filter + ".");
}

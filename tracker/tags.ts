/**
 * The tags the tracker keeps with a payload (`POST /payloads?tag=`): checked with the
 * peer's rules (`proto/search.ts` `Tag`, at most `MAX_TAGS`), and merged when a payload
 * is uploaded again with other tags.
 *
 * @module
 */
import { InvalidInputError } from "../proto/errors.ts";
import { MAX_TAGS } from "../proto/search.ts";
import { UploadTags } from "../proto/tracker.ts";

/**
 * The tags of an upload: those of the query (`tag` repeated) and of the JSON body, in
 * lower case (as the peer keeps them, `peer/search/metadata.ts`), without repeats. `InvalidInputError` (`invalid_tag`) for a bad tag or too many.
 */
export function uploadTags(...lists: (string[] | undefined)[]): string[] {
  const tags = [...new Set(lists.flatMap((l) => l ?? []).map((t) => t.toLowerCase()))];
  const parsed = UploadTags.safeParse(tags);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const bad = typeof issue.path[0] === "number" ? tags[issue.path[0]] : undefined;
  throw new InvalidInputError(
    "invalid_tag",
    bad === undefined
      ? `Cannot take ${tags.length} tags: a payload has at most ${MAX_TAGS}`
      : `Tag '${bad.slice(0, 80)}' is not valid: 1 to 64 characters, no spaces, commas or quotes`,
  );
}

/**
 * The tags of a payload after an upload gives `added`: the old ones then the new, at
 * most `MAX_TAGS` (the first kept); undefined when `added` brings nothing new.
 */
export function mergeTags(old: string[] | undefined, added: string[] | undefined) {
  const merged = [...new Set([...(old ?? []), ...(added ?? [])])].slice(0, MAX_TAGS);
  return merged.length > (old?.length ?? 0) ? merged : undefined;
}

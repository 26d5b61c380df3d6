/**
 * The control API's search routes (mounted by `peer/control.ts`, same token rules):
 *
 * | Route                                          | Answer                          |
 * | ---------------------------------------------- | ------------------------------- |
 * | `GET /_p2p/search?q=&limit=` (`SearchQueryParams`) | `SearchAnswer`              |
 * | `GET /_p2p/search/meta/:ref`                   | `PayloadMeta` (tags, given type) |
 * | `PUT /_p2p/search/meta/:ref` (`PayloadMeta`)   | `PayloadMeta`, indexed again     |
 *
 * A bad query is 400 with its code (`empty_query`, `query_too_long`,
 * `unbalanced_quotes`, … of `proto/search_query.ts`; `invalid_query` for a bad
 * `limit`); a peer whose search was not registered is 503 `unsupported`.
 *
 * @module
 */
import type { Hono } from "hono";
import { P2pError, TooLargeError } from "../../proto/errors.ts";
import { PayloadMeta, type SearchAnswer, SearchQueryParams } from "../../proto/search.ts";
import { jsonBody, limitBody, query } from "../../lib/http_api.ts";
import { type PeerSearch, searchOf } from "./registry.ts";

/** Largest `PUT /_p2p/search/meta/:ref` body. */
const MAX_META_BODY = 8192;

/** Mounts the search routes; `resolve` turns a `:ref` into a payloadId (`control_ids.ts`). */
export function mountSearchRoutes(
  app: Hono,
  store: object,
  resolve: (ref: string) => Promise<string>,
): void {
  const search = (): PeerSearch => {
    const s = searchOf(store);
    if (!s) throw new P2pError("unsupported", "This peer has no search index", { status: 503 });
    return s;
  };
  app.get("/_p2p/search", async (c) => {
    const { q, limit } = query(c, SearchQueryParams);
    return c.json(await search().network(q, limit) satisfies SearchAnswer);
  });
  app.get("/_p2p/search/meta/:ref", async (c) => {
    const id = await resolve(c.req.param("ref"));
    return c.json((await search().index()).meta(id) satisfies PayloadMeta);
  });
  app.put(
    "/_p2p/search/meta/:ref",
    limitBody(
      MAX_META_BODY,
      () => new TooLargeError("body_too_large", `Metadata is at most ${MAX_META_BODY} bytes`),
    ),
    async (c) => {
      const id = await resolve(c.req.param("ref"));
      const meta = await jsonBody(c, PayloadMeta);
      const index = await search().index();
      await index.setMeta(id, meta);
      return c.json(index.meta(id) satisfies PayloadMeta);
    },
  );
}

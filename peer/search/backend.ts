/**
 * Which index answers a peer's searches (`p2p peer --search-backend`): the embedded
 * MiniSearch index (`search_index.ts`, the default), or an Elasticsearch/OpenSearch
 * server (`elasticsearch.ts`) at `--search-url`, into which the peer indexes what it
 * holds and which then answers its local searches.
 *
 * @module
 */

/** The names `--search-backend` takes. */
export const SEARCH_BACKENDS = ["embedded", "elasticsearch"] as const;

/** The index a peer searches. */
export type SearchBackend =
  | { kind: "embedded" }
  | {
    kind: "elasticsearch";
    /** Base URL of the server, `http(s)://host:port`, without a trailing slash. */
    url: string;
    /** The index used on it (default `p2p`). */
    index?: string;
  };

/** A `--search-backend` name: `RangeError` naming the choices for any other. */
export function parseBackendName(value: string): SearchBackend["kind"] {
  const name = value.trim().toLowerCase();
  const known = SEARCH_BACKENDS.find((b) => b === name);
  if (!known) {
    throw new RangeError(
      `Search backend '${value}' is not known: use ${SEARCH_BACKENDS.join(" or ")}`,
    );
  }
  return known;
}

/** A `--search-url`: an http(s) URL with a host and nothing after the path; `RangeError` else. */
export function parseBackendUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`Search URL '${value}' is not a URL like http://127.0.0.1:9200`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new RangeError(`Search URL '${value}' must be http:// or https://`);
  }
  if (url.search || url.hash) {
    throw new RangeError(`Search URL '${value}' must have no query or fragment`);
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * The backend that `--search-backend` and `--search-url` choose (both checked already
 * by the two parsers): `RangeError` when elasticsearch is given no URL, or a URL is
 * given to the embedded index.
 */
export function searchBackendOf(name?: SearchBackend["kind"], url?: string): SearchBackend {
  if ((name ?? "embedded") === "embedded") {
    if (url !== undefined) {
      throw new RangeError(
        "--search-url is for --search-backend elasticsearch; the embedded index needs none",
      );
    }
    return { kind: "embedded" };
  }
  if (url === undefined) {
    throw new RangeError("--search-backend elasticsearch needs --search-url URL");
  }
  return { kind: "elasticsearch", url };
}

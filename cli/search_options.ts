/**
 * The search options of `p2p peer`: `--search-backend embedded|elasticsearch` and
 * `--search-url URL`, parsed by `peer/search/backend.ts` (a bad value is commander's
 * one-line usage error).
 *
 * @module
 */
import { InvalidArgumentError, Option } from "@commander-js/extra-typings";
import {
  parseBackendName,
  parseBackendUrl,
  type SearchBackend,
  searchBackendOf,
} from "../peer/search/backend.ts";
import { P2pError } from "../proto/errors.ts";

/** A commander argument parser from one that throws `RangeError`. */
function asArgument<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      if (err instanceof RangeError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

/** `--search-backend <name>`. */
export function searchBackendOption() {
  return new Option(
    "--search-backend <name>",
    "the index that answers this peer's searches: embedded (default, MiniSearch in the " +
      "data dir) or elasticsearch (an Elasticsearch/OpenSearch server at --search-url; " +
      "untested against a live server)",
  ).argParser(asArgument(parseBackendName));
}

/** `--search-url <url>`. */
export function searchUrlOption() {
  return new Option(
    "--search-url <url>",
    "base URL of the Elasticsearch/OpenSearch server of --search-backend elasticsearch, " +
      "e.g. http://127.0.0.1:9200 (its index: p2p)",
  ).argParser(asArgument(parseBackendUrl));
}

/**
 * The backend `p2p peer` was given: a `usage` error (one line) for elasticsearch
 * without a URL, or a URL for the embedded index.
 */
export function peerSearchBackend(
  name: SearchBackend["kind"] | undefined,
  url: string | undefined,
): SearchBackend {
  try {
    return searchBackendOf(name, url);
  } catch (err) {
    if (err instanceof RangeError) throw new P2pError("usage", err.message);
    throw err;
  }
}

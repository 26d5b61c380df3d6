/**
 * Search figures (issue 14):
 *
 * - **Index throughput**: MiB of text indexed per second when the index is built from a
 *   store of 1,000 text documents of 16 KiB (words drawn from a 5,000-word vocabulary,
 *   Zipf-like), reading each from the store included.
 * - **Index size**: bytes of `index.json` per MiB of text indexed.
 * - **Start-up with a saved index of 10,000 documents** (1 KiB each): the time
 *   `SearchIndex.open()` takes to load and check it, against a rebuild.
 * - **Query latency across five peers**: `GET /_p2p/search` on one of five peer
 *   processes on 127.0.0.2-.6 (200 documents each) that asks the four others, p50 and
 *   p99 over 100 queries of one or two words, after each peer's first search (which
 *   builds its index, measured apart); the figure is flagged when some peers did not
 *   answer (SEARCH_REQ needs `proto/answers.ts` to list it).
 *
 * @module
 */
import { ChunkStore } from "../peer/chunk_store.ts";
import { SearchIndex } from "../peer/search/search_index.ts";
import { SearchAnswer } from "../proto/search.ts";
import { followLog, peerAddress, type PeerProcess, spawnPeer } from "../tests/_peer_process.ts";
import { tempDir } from "../tests/_tracker_process.ts";
import type { BenchContext, Benchmark, BenchOutput, Figure } from "./_bench.ts";
import { MiB } from "./_bench.ts";

/** The search benchmark. */
export const search: Benchmark = {
  name: "search",
  description: "full-text index: build MiB/s, size per MiB, start-up with 10,000 " +
    "documents, query latency across five peers",
  run,
};

/** A deterministic generator of word salad over a fixed vocabulary. */
function words(seed: number) {
  let s = seed >>> 0;
  const rand = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const vocab = Array.from({ length: 5000 }, (_, i) => {
    let w = "";
    let n = i + 1;
    do {
      w += "abcdefghijklmnopqrstuvwxyz"[n % 26];
      n = Math.floor(n / 26);
    } while (n > 0);
    return w + "xe".slice(0, i % 3);
  });
  const word = () => vocab[Math.floor(vocab.length * rand() ** 3)];
  return {
    word,
    text(bytes: number): string {
      const out: string[] = [];
      let n = 0;
      while (n < bytes) {
        const w = word();
        out.push(w);
        n += w.length + 1;
      }
      return out.join(" ");
    },
  };
}

async function fill(store: ChunkStore, count: number, bytes: number, seed: number) {
  const gen = words(seed);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const text = new TextEncoder().encode(`doc ${seed}-${i} ${gen.text(bytes)}`);
    total += text.length;
    await store.importStream(ReadableStream.from([text]), { name: `doc-${seed}-${i}.txt` });
  }
  return total;
}

async function run(ctx: BenchContext): Promise<BenchOutput> {
  const figures: Figure[] = [];
  const notes: string[] = [];
  await using dir = await tempDir("p2p-bench-search-");

  // Build throughput and size.
  {
    const store = await ChunkStore.open(`${dir.path}/build/store`);
    const text = await fill(store, 1000, 16 * 1024, 1);
    const t0 = performance.now();
    const index = await SearchIndex.open(`${dir.path}/build/search`, store);
    const seconds = (performance.now() - t0) / 1000;
    await index.close();
    const size = (await Deno.stat(`${dir.path}/build/search/index.json`)).size;
    figures.push(
      { name: "index build", value: text / MiB / seconds, unit: "MiB/s", note: "1,000 x 16 KiB" },
      { name: "index size per MiB of text", value: size / (text / MiB) / MiB, unit: "MiB" },
    );
    store.close();
    ctx.log(`built ${(text / MiB).toFixed(1)} MiB in ${seconds.toFixed(2)} s`);
  }

  // Start-up with a saved index of 10,000 documents.
  {
    const store = await ChunkStore.open(`${dir.path}/start/store`);
    await fill(store, 10_000, 1024, 2);
    const t0 = performance.now();
    const built = await SearchIndex.open(`${dir.path}/start/search`, store);
    const rebuild = performance.now() - t0;
    await built.close();
    const t1 = performance.now();
    const loaded = await SearchIndex.open(`${dir.path}/start/search`, store);
    const load = performance.now() - t1;
    const flag = loaded.rebuilt ? "the saved index was not used" : undefined;
    await loaded.close();
    store.close();
    figures.push(
      {
        name: "start-up, saved index of 10,000 docs",
        value: load,
        unit: "ms",
        ...(flag ? { flag } : {}),
      },
      { name: "start-up, rebuilding 10,000 docs", value: rebuild, unit: "ms" },
    );
  }

  // Query latency across five peer processes.
  {
    await using stack = new AsyncDisposableStack();
    const others: PeerProcess[] = [];
    for (let i = 0; i < 4; i++) {
      others.push(stack.use(
        await spawnPeer({ dataDir: `${dir.path}/p${i}`, host: `127.0.0.${i + 3}`, name: `p${i}` }),
      ));
    }
    const a = stack.use(
      await spawnPeer({
        dataDir: `${dir.path}/a`,
        host: "127.0.0.2",
        name: "a",
        seeds: others.map(peerAddress),
      }),
    );
    await using log = await followLog(a);
    for (const p of others) {
      await log.waitFor((r) => r.type === "exchange" && r.with === p.peerId, "peer proven");
    }
    for (const [i, p] of [a, ...others].entries()) {
      const gen = words(10 + i);
      for (let d = 0; d < 200; d++) {
        const res = await fetch(`${p.http}/_p2p/payloads?name=d${i}-${d}.txt`, {
          method: "POST",
          headers: p.auth,
          body: gen.text(2048),
          signal: ctx.signal,
        });
        await res.text();
      }
    }
    // Each peer's first search opens (here: builds) its index; measured apart.
    let first = 0;
    for (const p of [a, ...others]) {
      const t0 = performance.now();
      const res = await fetch(`${p.http}/_p2p/search?q=warm`, {
        headers: p.auth,
        signal: ctx.signal,
      });
      await res.body?.cancel();
      first = Math.max(first, performance.now() - t0);
    }
    figures.push({ name: "first search of a peer (builds 200 docs)", value: first, unit: "ms" });
    const gen = words(99);
    const times: number[] = [];
    let missing = 0;
    for (let i = 0; i < 100; i++) {
      const q = i % 2 ? gen.word() : `${gen.word()} ${gen.word()}`;
      const t0 = performance.now();
      const res = await fetch(`${a.http}/_p2p/search?${new URLSearchParams({ q })}`, {
        headers: a.auth,
        signal: ctx.signal,
      });
      const answer = SearchAnswer.parse(await res.json());
      times.push(performance.now() - t0);
      missing = Math.max(missing, answer.missing.length);
    }
    times.sort((x, y) => x - y);
    const flag = missing > 0 ? `${missing} of 4 peers did not answer` : undefined;
    const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
    figures.push(
      { name: "query across 5 peers p50", value: at(0.5), unit: "ms", ...(flag ? { flag } : {}) },
      { name: "query across 5 peers p99", value: at(0.99), unit: "ms", ...(flag ? { flag } : {}) },
    );
  }
  return { figures, notes };
}

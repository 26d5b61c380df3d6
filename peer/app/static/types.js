/**
 * The shapes the page works with, as JSDoc types: the control API's answers (the part
 * `api.js` checks; their definition is `proto/control.ts`) and the page's own state.
 * No code.
 *
 * @module
 */

/**
 * @typedef {{ url: string, ok: boolean, lastError?: string, lastContact?: number }} Tracker
 * @typedef {{
 *   peerId: string, name: string, version: string, host: string, dataDir?: string,
 *   ports: Record<string, number>, tracker: Tracker | null, payloads: number,
 *   completePayloads: number, storedBytes: number, knownPeers: number, connections: number,
 *   downloads: string[], memory?: { rss: number }
 * }} Status
 * @typedef {{
 *   peerId: string, host: string, ports: Record<string, number>, name?: string,
 *   sources: string[], lastSeen: number, failures: number, rttMs?: number, stale: boolean
 * }} Peer
 * @typedef {{
 *   payloadId: string, size: number, chunks: number, held: number, complete: boolean,
 *   name?: string, addedAt: number, pinned?: boolean
 * }} StoredPayload
 * @typedef {{ peerId: string, name?: string, held: number, complete: boolean }} Holder
 * @typedef {{
 *   payloadId: string, name?: string, size: number, chunks: number, holders: Holder[]
 * }} NetworkPayload
 * @typedef {{
 *   peerId: string, name?: string, address: string, have: string, count: number, via: string
 * }} WhereRow
 * @typedef {{ chunks: number, rows: WhereRow[] }} Where
 * @typedef {{ id: number, ts: string, type: string, [k: string]: unknown }} ActivityRecord
 * @typedef {{
 *   found: { peerId: string, name?: string, host: string, rttMs?: number, change: string }[],
 *   rejected?: { address: string, reason: string }[],
 *   stale?: { peerId: string, address: string, reason: string }[],
 *   ranges?: string[], devices?: number, probed?: number, devicesError?: string,
 *   seconds: number
 * }} DiscoveryReport
 * @typedef {{
 *   chunks: number, done: number, size: number, bytes: number, fetchedBytes: number,
 *   seconds: number, sources: number
 * }} Progress
 * @typedef {{
 *   id: string, running: boolean, save: boolean, progress?: Progress,
 *   bySource: Map<string, number>, result?: Record<string, any>, error?: string
 * }} Download
 * @typedef {{
 *   id: string, name: string, size: number, chunks: number, held: number,
 *   complete: boolean, here: boolean, pinned: boolean, addedAt: number, holders: Holder[],
 *   download?: Download
 * }} PayloadRow
 * @typedef {{ text: string, mark?: boolean }} SnippetPart
 * @typedef {{
 *   payloadId: string, name?: string, type: string, tags: string[], size: number,
 *   score: number, snippet: SnippetPart[], holders: { peerId: string, name?: string }[]
 * }} SearchHit
 * @typedef {{
 *   query: string, hits: SearchHit[], asked: number,
 *   missing: { peerId: string, name?: string, message: string }[]
 * }} SearchAnswer
 */

export {};

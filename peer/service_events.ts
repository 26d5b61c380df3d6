/**
 * How the chunk service's events become activity records: the refusals a stranger
 * can cause at will are folded (`PeerLog.refused()`), the rest recorded as they come.
 *
 * @module
 */
import type { PeerLog } from "./activity.ts";
/**
 * Records an event of the chunk service. A connection refused as busy (`conn.reject`)
 * and a failed handshake (`conn.error`) are refusals a stranger can cause at will, so
 * they go through `PeerLog.refused()`, keyed by the client's address (`from`, added
 * to `conn.error` from its `remote`) and code: a flood costs a few records a minute.
 * The `rate_limited` rejects come folded by the service already.
 */
export function recordServiceEvent(
  log: Pick<PeerLog, "record" | "refused">,
  type: string,
  fields: Record<string, unknown>,
): void {
  const refusal = type === "conn.error" ||
    (type === "conn.reject" && fields.code !== "rate_limited");
  if (!refusal) {
    log.record(type, fields);
    return;
  }
  const remote = String(fields.remote ?? "");
  const from = fields.from ?? remote.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  log.refused(type, { ...fields, from });
}

/**
 * Request counters of the tracker and their Prometheus text rendering.
 *
 * @module
 */

/** Counts HTTP requests by method, route and status. */
export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly startedAt = Date.now();

  /** Counts one answered request. */
  count(method: string, route: string, status: number): void {
    const key = `${method}\u0000${route}\u0000${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  /** Prometheus text exposition of the counters plus the given gauges. */
  render(gauges: Record<string, { help: string; value: number }>): string {
    const lines = [
      "# HELP p2p_tracker_http_requests_total HTTP requests answered, by method, route and status.",
      "# TYPE p2p_tracker_http_requests_total counter",
    ];
    for (const [key, n] of [...this.#requests].sort()) {
      const [method, route, status] = key.split("\u0000");
      lines.push(
        `p2p_tracker_http_requests_total{method="${method}",route="${
          escapeLabel(route)
        }",status="${status}"} ${n}`,
      );
    }
    const all = {
      ...gauges,
      p2p_tracker_uptime_seconds: {
        help: "Seconds since the tracker started.",
        value: Math.floor((Date.now() - this.startedAt) / 1000),
      },
    };
    for (const [name, g] of Object.entries(all)) {
      lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.value}`);
    }
    return lines.join("\n") + "\n";
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

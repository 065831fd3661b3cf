// Process-wide metrics (CPU, memory, event loop lag, GC, heap) from prom-client's
// collectDefaultMetrics. They describe the Node.js process, not a Raft node, so they live in ONE
// registry per process: several NodeMetrics in one test process each serve these same series
// next to their own, and nothing is registered twice (prom-client throws on a duplicate name).
// Each node adds its own `scm_node_id` label when it serves them (withProcessLabel), so a query
// like `process_resident_memory_bytes{scm_node_id="scm2"}` works like any other.
import { collectDefaultMetrics, Registry } from 'prom-client';

// prom-client names these three gauges with a `_total` suffix, which Prometheus reserves for
// counters (promtool check metrics rejects them). They are only totals of the per-type gauges
// prom-client also exports (`nodejs_active_handles{type}`, `nodejs_active_resources{type}`, …),
// so dropping them loses nothing: `sum(nodejs_active_resources)` gives the same number.
const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

let processRegistry: Registry | undefined;

/** The process-wide registry holding the default process metrics, created on first use. */
export function getProcessRegistry(): Registry {
  if (processRegistry === undefined) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
    processRegistry = registry;
  }
  return processRegistry;
}

const SAMPLE_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/**
 * Adds `name="value"` to every sample of a text exposition (comment lines are left alone), so the
 * process-wide series served by a node carry its `scm_node_id` like all its other series.
 */
export function withProcessLabel(exposition: string, name: string, value: string): string {
  const label = `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  return exposition
    .split('\n')
    .map((line) => {
      if (line.length === 0 || line.startsWith('#')) return line;
      const metric = SAMPLE_NAME.exec(line)?.[0];
      if (metric === undefined) return line;
      const rest = line.slice(metric.length);
      if (rest.startsWith('{}')) return `${metric}{${label}}${rest.slice(2)}`;
      if (rest.startsWith('{')) return `${metric}{${label},${rest.slice(1)}`;
      return `${metric}{${label}}${rest}`;
    })
    .join('\n');
}

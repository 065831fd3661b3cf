// Process-wide metrics (CPU, memory, event loop lag, GC, heap) from prom-client's
// collectDefaultMetrics. They describe the Node.js process, not a Raft node, so they live in ONE
// registry per process: several NodeMetrics in one test process each serve these same series
// next to their own, and nothing is registered twice (prom-client throws on a duplicate name).
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

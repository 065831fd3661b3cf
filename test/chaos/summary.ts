// The end-of-run summary: operations by kind and outcome, faults by kind, installs, unavailability
// per fault kind (min / median / max), and the checks with their violations.
import type { FaultRecord } from './faults.js';
import type { HistoryEntry } from './history.js';
import type { Violation } from './post-heal.js';
import { spread } from './unavailability.js';

export interface RunSummaryInput {
  readonly seed: number;
  readonly elapsedMs: number;
  readonly partitions: string;
  /** The nodes ran mutual TLS on every port. */
  readonly tls: boolean;
  readonly history: readonly HistoryEntry[];
  readonly faults: readonly FaultRecord[];
  readonly unavailabilityMs: ReadonlyMap<number, number>;
  readonly installs: number;
  readonly checks: readonly string[];
  readonly violations: readonly Violation[];
  readonly skippedKinds: readonly string[];
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function formatSummary(input: RunSummaryInput): string {
  const lines: string[] = [];
  lines.push(`chaos run: seed ${input.seed}, ${s(input.elapsedMs)}, ${input.tls ? 'mutual TLS' : 'plaintext'}, partitions: ${input.partitions}`);
  const byKind = new Map<string, Map<string, number>>();
  for (const e of input.history) {
    const kind = e.call.kind === 'get' || e.call.kind === 'list' ? `${e.call.kind} ${e.call.consistency}` : e.call.kind;
    const outcome = e.outcome.type === 'ok' ? (e.sends > 1 ? 'ok after re-send' : 'ok') : `${e.outcome.type} ${e.outcome.code}`;
    const row = byKind.get(kind) ?? new Map<string, number>();
    row.set(outcome, (row.get(outcome) ?? 0) + 1);
    byKind.set(kind, row);
  }
  lines.push(`operations: ${input.history.length}`);
  for (const [kind, row] of [...byKind].sort()) {
    lines.push(`  ${kind.padEnd(18)} ${[...row].sort((a, b) => b[1] - a[1]).map(([o, n]) => `${o}: ${n}`).join(', ')}`);
  }
  lines.push(`faults: ${input.faults.length}; snapshot installs: ${input.installs}`);
  const kinds = [...new Set(input.faults.map((f) => f.kind))].sort();
  lines.push(`  ${'kind'.padEnd(24)} ${'n'.padStart(3)}  unavailability min / median / max   healed (max)`);
  for (const kind of kinds) {
    const faults = input.faults.filter((f) => f.kind === kind);
    const gaps = spread(faults.map((f) => input.unavailabilityMs.get(f.index) ?? 0));
    const healMs = faults.map((f) => (f.recoveredAt === null ? Infinity : f.recoveredAt - f.healedAt));
    const gapText = gaps === undefined ? '-' : `${s(gaps.min)} / ${s(gaps.median)} / ${s(gaps.max)}`;
    const worst = Math.max(...healMs);
    lines.push(`  ${kind.padEnd(24)} ${String(faults.length).padStart(3)}  ${gapText.padEnd(34)} ${worst === Infinity ? 'NOT HEALED' : s(worst)}`);
  }
  if (input.skippedKinds.length > 0) lines.push(`  not run: ${input.skippedKinds.join(', ')}`);
  lines.push(`checks: ${input.checks.join(', ')}`);
  if (input.violations.length === 0) lines.push('violations: none');
  else {
    lines.push(`violations: ${input.violations.length}`);
    for (const v of input.violations.slice(0, 20)) lines.push(`  [${v.check}] ${v.message.split('\n').slice(0, 12).join('\n    ')}`);
  }
  return lines.join('\n');
}

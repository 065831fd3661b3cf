// A Wing–Gong style linearizability checker for a single register (a P-compositional model, so a
// multi-key history is checked key by key). Operations that never completed ("info": the client
// gave up waiting) may take effect at any point after their invocation, or not at all.

export interface RegisterOp {
  readonly kind: 'write' | 'read';
  /** Value written, or value the read returned (null: the register was never written). */
  readonly value: number | null;
  readonly invoke: number;
  /** Completion time; Infinity for an operation whose outcome is unknown. */
  readonly complete: number;
  readonly label: string;
}

export interface CheckResult {
  readonly ok: boolean;
  /** On failure, the operations that could not be linearized (for the trace). */
  readonly explanation?: string;
}

/**
 * Searches for a total order that respects real time (an op that completed before another was
 * invoked comes first) in which every read returns the latest write. Memoizes (remaining ops,
 * register value) so histories of a few dozen ops per key check quickly.
 */
export function checkRegister(history: readonly RegisterOp[], maxStates = 2_000_000): CheckResult {
  // A write whose outcome is unknown and whose value no read returned can always be left out: in
  // any linearization that includes it, every read after it sees a later write, so dropping it
  // keeps the rest valid. (Written values are unique.) This keeps the search small.
  const readValues = new Set(history.filter((o) => o.kind === 'read').map((o) => o.value));
  const ops = history
    .filter((o) => !(o.kind === 'write' && o.complete === Infinity && !readValues.has(o.value)))
    .sort((a, b) => a.invoke - b.invoke);
  const n = ops.length;
  if (n === 0) return { ok: true };
  // Definite ops must all be linearized; unknown-outcome writes may be dropped.
  const mustCount = ops.filter((o) => o.complete !== Infinity).length;
  const done = new Uint8Array(n);
  const seen = new Set<string>();
  let states = 0;
  let linearizedMust = 0;

  const key = (value: number | null): string => {
    let s = '';
    for (let i = 0; i < n; i++) s += done[i] === 1 ? '1' : '0';
    return `${s}|${value}`;
  };

  const search = (value: number | null): boolean => {
    if (linearizedMust === mustCount) return true;
    if (++states > maxStates) throw new Error(`linearizability check exceeded ${maxStates} states`);
    const k = key(value);
    if (seen.has(k)) return false;
    seen.add(k);
    // Only ops invoked before the earliest completion among the remaining ones may go next.
    let minComplete = Infinity;
    for (let i = 0; i < n; i++) if (done[i] === 0 && (ops[i] as RegisterOp).complete < minComplete) minComplete = (ops[i] as RegisterOp).complete;
    for (let i = 0; i < n; i++) {
      if (done[i] === 1) continue;
      const op = ops[i] as RegisterOp;
      if (op.invoke > minComplete) break; // sorted by invoke
      if (op.kind === 'read' && op.value !== value) continue;
      done[i] = 1;
      const must = op.complete !== Infinity;
      if (must) linearizedMust++;
      const ok = search(op.kind === 'write' ? op.value : value);
      if (must) linearizedMust--;
      done[i] = 0;
      if (ok) return true;
    }
    return false;
  };

  if (search(null)) return { ok: true };
  const lines = ops.map((o) => `  ${o.label}: ${o.kind} ${o.value} [${o.invoke}, ${o.complete}]`);
  return { ok: false, explanation: `no linearization of:\n${lines.join('\n')}` };
}

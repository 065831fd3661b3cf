// The simulator's register workload as a model for the shared Wing–Gong checker
// (test/checker/linearizability.ts). A single register is P-compositional, so a multi-key history is
// checked key by key. Operations that never completed ("info": the client gave up waiting) may take
// effect at any point after their invocation, or not at all.
import { checkLinearizable, type Model } from '../checker/linearizability.js';

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

class Register implements Model<RegisterOp> {
  private value: number | null = null;

  apply(op: RegisterOp): (() => void) | undefined {
    if (op.kind === 'read') return op.value === this.value ? () => undefined : undefined;
    const before = this.value;
    this.value = op.value;
    return () => {
      this.value = before;
    };
  }

  fingerprint(): string {
    return String(this.value);
  }

  describe(): string {
    return `register = ${this.value}`;
  }
}

/** Whether some order that respects real time has every read return the latest write. */
export function checkRegister(history: readonly RegisterOp[], maxStates = 2_000_000): CheckResult {
  // A write whose outcome is unknown and whose value no read returned can always be left out: in
  // any linearization that includes it, every read after it sees a later write, so dropping it
  // keeps the rest valid. (Written values are unique.) This keeps the search small.
  const readValues = new Set(history.filter((o) => o.kind === 'read').map((o) => o.value));
  const ops = history
    .filter((o) => !(o.kind === 'write' && o.complete === Infinity && !readValues.has(o.value)))
    .map((o) => ({ op: o, invoke: o.invoke, complete: o.complete, label: `${o.label}: ${o.kind} ${o.value}` }));
  const result = checkLinearizable(ops, new Register(), maxStates);
  if (result.ok) return { ok: true };
  if (result.inconclusive) throw new Error(`linearizability check: ${result.explanation}`);
  return { ok: false, explanation: `no linearization of:\n${result.explanation}` };
}

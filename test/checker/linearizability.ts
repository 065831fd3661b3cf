// A Wing–Gong linearizability checker with Lowe's memoization (the algorithm Porcupine and Knossos
// run), generic over a sequential model, for the simulator's register workload and the chaos
// harness's container table alike.
//
// It searches for a total order of the operations that respects real time (an operation that
// completed before another was invoked comes first) and in which each operation is legal in the
// model's state at its place. Operations with an unknown outcome (the client gave up) may be placed
// anywhere after their invocation, or left out (it did not take effect); one known to have taken
// effect whose answer was lost must be placed, at any point after its invocation.
//
// The search is iterative (histories of tens of thousands of operations would overflow the stack)
// and the model is mutable with undo, so a step costs what the operation touches, not the size of
// the state. Visited (set of linearized operations, model state) pairs are remembered by 64-bit
// Zobrist fingerprints; a collision could only prune a path, so the chance of a false violation is
// about states² / 2⁶⁴, negligible at the budget below.

export interface Operation<T> {
  readonly op: T;
  readonly invoke: number;
  /** Completion time; Infinity when the outcome is unknown. */
  readonly complete: number;
  /** Must be placed even though complete is Infinity (known to have taken effect). Default: complete is finite. */
  readonly required?: boolean;
  readonly label: string;
}

/** A sequential specification: mutable state, with undo so the search can back out of a step. */
export interface Model<T> {
  /** Applies `op` if it is legal in the current state and returns how to undo it; undefined if illegal. */
  apply(op: T, unknownOutcome: boolean): (() => void) | undefined;
  /** Identifies the current state (equal states, equal strings). */
  fingerprint(): string;
  /** The current state in words, for a failure message. */
  describe(): string;
}

export type CheckResult =
  | { readonly ok: true; readonly states: number }
  | { readonly ok: false; readonly inconclusive: boolean; readonly explanation: string };

export function checkLinearizable<T>(history: readonly Operation<T>[], model: Model<T>, maxStates = 5_000_000): CheckResult {
  const ops = [...history].sort((a, b) => a.invoke - b.invoke || a.complete - b.complete);
  const n = ops.length;
  const required = ops.map((o) => o.complete !== Infinity || o.required === true);
  let requiredLeft = required.filter(Boolean).length;
  // Doubly linked list of the operations not yet placed, in invocation order (index n is the head).
  const next = new Int32Array(n + 1);
  const prev = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1;
    prev[i] = i === 0 ? n : i - 1;
  }
  next[n] = n === 0 ? n : 0;
  prev[n] = n === 0 ? n : n - 1;
  const unlink = (i: number): void => {
    next[prev[i]!] = next[i]!;
    prev[next[i]!] = prev[i]!;
  };
  const relink = (i: number): void => {
    next[prev[i]!] = i;
    prev[next[i]!] = i;
  };
  // Zobrist keys for the set of placed operations.
  const zobrist = new Uint32Array(2 * n);
  let seed = 0x2545f491;
  for (let i = 0; i < zobrist.length; i++) {
    seed = (seed + 0x9e3779b9) >>> 0;
    let z = seed;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    zobrist[i] = (z ^ (z >>> 16)) >>> 0;
  }
  let h1 = 0;
  let h2 = 0;
  const seen = new Set<string>();
  /** The earliest completion among the unplaced: nothing invoked after it may be placed next. */
  const windowEnd = (): number => {
    let min = Infinity;
    for (let i = next[n]!; i !== n; i = next[i]!) {
      const o = ops[i]!;
      if (o.invoke > min) break;
      if (o.complete < min) min = o.complete;
    }
    return min;
  };
  const stack: Array<{ index: number; undo: () => void; windowEnd: number }> = [];
  let states = 0;
  let deepest = 0;
  let deepestDescription = model.describe();
  let deepestWindow: number[] = [];
  let candidate = next[n]!;
  let limit = windowEnd();
  while (requiredLeft > 0) {
    let placed = false;
    for (; candidate !== n && ops[candidate]!.invoke <= limit; candidate = next[candidate]!) {
      const o = ops[candidate]!;
      const undo = model.apply(o.op, o.complete === Infinity);
      if (undo === undefined) continue;
      const k1 = (h1 ^ zobrist[2 * candidate]!) >>> 0;
      const k2 = (h2 ^ zobrist[2 * candidate + 1]!) >>> 0;
      const key = `${k1}.${k2}|${model.fingerprint()}`;
      if (seen.has(key)) {
        undo();
        continue;
      }
      seen.add(key);
      if (++states > maxStates) {
        return { ok: false, inconclusive: true, explanation: `gave up after ${maxStates} states (placed ${deepest} of ${n} operations at most)` };
      }
      h1 = k1;
      h2 = k2;
      stack.push({ index: candidate, undo, windowEnd: limit });
      unlink(candidate);
      if (required[candidate]) requiredLeft--;
      placed = true;
      break;
    }
    if (requiredLeft === 0) break;
    if (placed) {
      if (stack.length > deepest) {
        deepest = stack.length;
        deepestDescription = model.describe();
        deepestWindow = [];
      }
      candidate = next[n]!;
      limit = windowEnd();
      continue;
    }
    if (stack.length === deepest && deepestWindow.length === 0) {
      for (let i = next[n]!; i !== n && ops[i]!.invoke <= limit; i = next[i]!) deepestWindow.push(i);
    }
    // Nothing fits here: back out of the last placement and try the next candidate at that level.
    const top = stack.pop();
    if (top === undefined) {
      const window = deepestWindow.map((i) => `  ${ops[i]!.label} [${ops[i]!.invoke}, ${ops[i]!.complete}]`).join('\n');
      return {
        ok: false,
        inconclusive: false,
        explanation:
          `not linearizable: at most ${deepest} of ${n} operations could be placed; then the state was ${deepestDescription}` +
          ` and none of these could go next:\n${window}`,
      };
    }
    top.undo();
    relink(top.index);
    if (required[top.index]) requiredLeft++;
    h1 = (h1 ^ zobrist[2 * top.index]!) >>> 0;
    h2 = (h2 ^ zobrist[2 * top.index + 1]!) >>> 0;
    candidate = next[top.index]!;
    limit = top.windowEnd;
  }
  return { ok: true, states };
}

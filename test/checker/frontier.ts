// A linearizability checker that walks the history in time order and keeps only the frontier: the
// ways the operations completed so far can have been ordered, reduced to what the future can see
// (the model state, and which still-open operations were already placed). It decides what the
// Wing–Gong search in linearizability.ts decides (same operations, same real-time order, same
// optional and required unknowns), but it never goes back: its memory is the frontier, not the
// history, and its time per completion depends on what is open then, not on how far back a wrong
// guess was made. A history of 300,000 operations with a handful open at any moment keeps a handful
// of configurations.
//
// Why it is the same question. An operation is open from its invocation to its completion. At the
// completion of operation i, every linearization has placed i; so each configuration is extended by
// the sequences of open operations that end with i (the "just in time" placement of Lowe's
// linearizability testing), and the configurations that cannot place i die. Nothing is placed
// earlier than needed: an open operation is placed while still open, so every sequence built
// respects real time (an operation that completed before another was invoked was placed before
// that one was open). Conversely, for any linearization, a configuration holding its prefix up to
// the latest completed operation survives every step: the operations ahead of i in it were invoked
// before i completed, so they are open (or placed) when i completes. Operations with an unknown
// outcome stay open to the end; those known to have taken effect (`required`) are placed at the
// end, one by one, the same way.
//
// What is left out, and why nothing is lost. A configuration is dropped only when another one that
// is kept can do everything it can: one that reaches it by placing open operations it has not
// placed yet, or one in the same state that left out more optional unknowns. Such a "dominated"
// configuration's every future is also the other's, so the verdict is unchanged; this keeps open
// calls that nothing has observed yet (unknown outcomes especially) from multiplying the frontier.
// With the model's `independent`, a completion places before it only the open operations it
// depends on, by the same argument. Configurations are merged only when their keys are equal, and
// the key must be exact (no hashing): no collision can merge two different states.
//
// Every configuration kept was built by legal steps in real-time order, so "linearizable" always
// comes with a linearization; the reductions can only cost completeness if an argument above is
// wrong, which is what the differential tests (frontier.test.ts and the chaos model's) look for.

import type { CheckResult, Operation } from './linearizability.js';

/** A sequential specification whose states are values: a step returns a new state and leaves the old one intact. */
export interface PersistentModel<S, T> {
  readonly initial: S;
  /** The state after `op` if `op` is legal in `state`; undefined if it is not. Must not modify `state`. */
  step(state: S, op: T, unknownOutcome: boolean): S | undefined;
  /** Equal exactly when the states are equal (configurations with equal keys are merged). */
  key(state: S): string;
  /** The state in words, for a failure message. */
  describe(state: S): string;
  /**
   * True only if `a` and `b` commute in every state: either order is legal exactly when the other is,
   * and both end in the same state. Placing `i` then only places the open operations that `i`
   * depends on (see place); without it every open operation is taken to depend on every other.
   */
  independent?(a: T, b: T): boolean;
  /**
   * Called between events with every live state, which are then the only ones in use; may move what
   * they all share into storage they share, so states stay small. Returns them in the same order.
   */
  compact?(states: readonly S[]): readonly S[];
}

interface Configuration<S> {
  readonly state: S;
  /** The open operations this order has already placed, ascending. */
  readonly placed: readonly number[];
}

interface Event {
  readonly time: number;
  /** 0: invocation, 1: completion (invocations at a time come first: they may be placed before it). */
  readonly kind: 0 | 1;
  readonly index: number;
}

export interface FrontierLimits {
  /** Configurations one completion may explore before the check gives up (inconclusive). */
  readonly maxConfigurationsPerStep?: number;
}

/**
 * A time that is not a number, or a completion before its own invocation, would put the completion
 * event ahead of the operation's opening: the walk would then close some other open operation in
 * its place (a required unknown, say, never to be placed) and could pass a history it must fail.
 * Recorded histories cannot have one (the clock is monotonic); an edited or foreign one can.
 */
function assertWellFormed<T>(o: Operation<T>): void {
  if (!Number.isFinite(o.invoke) || !(o.complete === Infinity || (Number.isFinite(o.complete) && o.complete >= o.invoke))) {
    throw new Error(`not a well-formed operation: ${o.label} is invoked at ${o.invoke} and completes at ${o.complete}`);
  }
}

/** Removes `i` from the open operations; it must be there (an invariant of the walk, not an input check). */
function closeOpen(open: number[], i: number): void {
  const at = open.indexOf(i);
  if (at < 0) throw new Error(`frontier checker invariant broken: operation ${i} closed while not open`);
  open.splice(at, 1);
}

export function checkLinearizableFrontier<S, T>(history: readonly Operation<T>[], model: PersistentModel<S, T>, limits: FrontierLimits = {}): CheckResult {
  const maxPerStep = limits.maxConfigurationsPerStep ?? 1_000_000;
  for (const o of history) assertWellFormed(o);
  const ops = [...history].sort((a, b) => a.invoke - b.invoke || a.complete - b.complete);
  const events: Event[] = [];
  ops.forEach((o, index) => {
    events.push({ time: o.invoke, kind: 0, index });
    if (o.complete !== Infinity) events.push({ time: o.complete, kind: 1, index });
  });
  events.sort((a, b) => a.time - b.time || a.kind - b.kind || a.index - b.index);

  let frontier: Configuration<S>[] = [{ state: model.initial, placed: [] }];
  const open: number[] = [];
  let states = 1;
  let lastCompleted: number | undefined;

  const configKey = (state: S, placed: readonly number[]): string => `${model.key(state)}|${placed.join(',')}`;

  /**
   * The open operations not yet placed in `placed` that `i` depends on, directly or through one
   * another. Only these need go before `i`: any other open operation commutes with all of them and
   * with `i`, so an order that places it before `i` ends in the state of the order that leaves it
   * open and places it right after `i`, which it may still do later; the configuration that left it
   * open can do everything the other can. (Without this, independent open calls would multiply the
   * frontier by every subset of them placed.)
   */
  const dependencies = (i: number, placed: readonly number[]): number[] => {
    const candidates = open.filter((j) => j !== i && !placed.includes(j));
    const independent = model.independent;
    if (independent === undefined) return candidates;
    // Breadth-first from i: each member is compared once with each operation not yet in.
    const component: number[] = [];
    const unexplored = [i];
    for (let m = unexplored.pop(); m !== undefined; m = unexplored.pop()) {
      const member = ops[m]!.op;
      for (let k = 0; k < candidates.length; k++) {
        const j = candidates[k]!;
        if (independent(member, ops[j]!.op)) continue;
        component.push(j);
        unexplored.push(j);
        candidates.splice(k--, 1);
      }
    }
    return component;
  };

  /**
   * Whether some operation placed before `i` in `sequence` commutes with everything after it: then
   * this order ends in the state of the order without it, placed right after `i` instead, and the
   * configuration that leaves it open (reached by that shorter order, which is legal too) can do
   * everything this one can. Dropping such orders keeps open calls that nothing has needed yet
   * from multiplying the frontier.
   */
  const deferrable = (sequence: readonly number[], i: number): boolean => {
    const independent = model.independent;
    if (independent === undefined) return false;
    return sequence.some((a, p) => independent(ops[a]!.op, ops[i]!.op) && sequence.slice(p + 1).every((b) => independent(ops[a]!.op, ops[b]!.op)));
  };

  /** Every configuration that places `i` after some open operations; undefined when over the budget. */
  const place = (i: number): Configuration<S>[] | undefined => {
    const result = new Map<string, Configuration<S>>();
    const visited = new Set<string>();
    for (const c of frontier) visited.add(configKey(c.state, c.placed));
    for (const start of frontier) {
      if (start.placed.includes(i)) {
        const placed = start.placed.filter((j) => j !== i);
        result.set(configKey(start.state, placed), { state: start.state, placed });
        continue;
      }
      const movable = [...dependencies(i, start.placed), i];
      const pending: Array<Configuration<S> & { readonly sequence: readonly number[] }> = [{ ...start, sequence: [] }];
      while (pending.length > 0) {
        const c = pending.pop()!;
        for (const j of movable) {
          if (c.placed.includes(j)) continue;
          const o = ops[j]!;
          const state = model.step(c.state, o.op, o.complete === Infinity);
          if (state === undefined) continue;
          if (j === i) {
            const key = configKey(state, c.placed);
            if (!result.has(key) && !deferrable(c.sequence, i)) result.set(key, { state, placed: c.placed });
            continue;
          }
          const placed = insertSorted(c.placed, j);
          const key = configKey(state, placed);
          if (visited.has(key)) continue;
          visited.add(key);
          pending.push({ state, placed, sequence: [...c.sequence, j] });
        }
        if (visited.size + result.size > maxPerStep) return undefined;
      }
    }
    states += visited.size - frontier.length + result.size;
    return withoutReachable([...result.values()]);
  };

  /**
   * Drops each configuration that another reaches by placing one more open operation now: the other
   * can do everything it can. (An unknown state change that a refusal or read could not see either
   * way, for one, leaves the order that placed it and the order that did not; only the second needs
   * keeping, as it may still place it.)
   */
  const withoutReachable = (configs: Configuration<S>[]): Configuration<S>[] => {
    if (configs.length < 2) return configs;
    const byPlaced = new Map<string, Configuration<S>[]>();
    for (const c of configs) {
      const key = c.placed.join(',');
      const list = byPlaced.get(key);
      if (list === undefined) byPlaced.set(key, [c]);
      else list.push(c);
    }
    return configs.filter((c) => {
      const target = model.key(c.state);
      return !c.placed.some((j) =>
        (byPlaced.get(c.placed.filter((x) => x !== j).join(',')) ?? []).some((d) => {
          const reached = model.step(d.state, ops[j]!.op, ops[j]!.complete === Infinity);
          return reached !== undefined && model.key(reached) === target;
        }),
      );
    });
  };

  const optional = (j: number): boolean => ops[j]!.complete === Infinity && ops[j]!.required !== true;

  /**
   * An unknown outcome never completes, so it would stay open, and in every configuration's placed
   * list, to the end. Once every configuration has placed it, it can never be placed again and (if
   * required) is satisfied: it is dropped from all, which merges configurations that differed by it.
   */
  const retireUnknowns = (configs: Configuration<S>[]): Configuration<S>[] => {
    const done = configs[0]!.placed.filter((j) => ops[j]!.complete === Infinity && configs.every((c) => c.placed.includes(j)));
    if (done.length === 0) return configs;
    for (const j of done) closeOpen(open, j);
    const merged = new Map<string, Configuration<S>>();
    for (const c of configs) {
      const placed = c.placed.filter((j) => !done.includes(j));
      merged.set(configKey(c.state, placed), { state: c.state, placed });
    }
    return [...merged.values()];
  };

  /**
   * Drops a configuration when another has the same state and placed the same operations except
   * for fewer optional unknowns (ones that may be left out): that one can still place those later,
   * or never, so it can do everything the first can.
   */
  const prune = (configs: Configuration<S>[]): Configuration<S>[] => {
    if (configs.length < 2) return configs;
    const groups = new Map<string, Configuration<S>[]>();
    for (const c of configs) {
      const key = configKey(c.state, c.placed.filter((j) => !optional(j)));
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [c]);
      else group.push(c);
    }
    if (groups.size === configs.length) return configs;
    const kept: Configuration<S>[] = [];
    for (const group of groups.values()) {
      for (const c of group) {
        const dominated = group.some((d) => d !== c && d.placed.length < c.placed.length && d.placed.every((j) => c.placed.includes(j)));
        if (!dominated) kept.push(c);
      }
    }
    return kept;
  };

  const fail = (i: number, why: string): CheckResult => {
    const o = ops[i]!;
    const others = open.filter((j) => j !== i).map((j) => `  ${ops[j]!.label} [${ops[j]!.invoke}, ${ops[j]!.complete}]`);
    const after = lastCompleted === undefined ? 'at the start' : `after ${ops[lastCompleted]!.label} completed at ${ops[lastCompleted]!.complete}`;
    return {
      ok: false,
      inconclusive: false,
      explanation:
        `not linearizable: ${o.label} [${o.invoke}, ${o.complete}] ${why}; ${after} the state was ${model.describe(frontier[0]!.state)}` +
        `${frontier.length > 1 ? ` (or one of ${frontier.length - 1} other possible states)` : ''}` +
        `${others.length > 0 ? `, and these were open:\n${others.join('\n')}` : ', and nothing else was open'}`,
    };
  };
  const gaveUp = (i: number): CheckResult => ({
    ok: false,
    inconclusive: true,
    explanation: `gave up at ${ops[i]!.label}: placing it explored more than ${maxPerStep} configurations (${open.length} operations open)`,
  });

  const complete = (i: number, why: string): CheckResult | undefined => {
    const next = place(i);
    if (next === undefined) return gaveUp(i);
    if (next.length === 0) return fail(i, why);
    closeOpen(open, i);
    frontier = prune(retireUnknowns(next));
    lastCompleted = i;
    if (model.compact !== undefined) {
      const compacted = model.compact(frontier.map((c) => c.state));
      frontier = frontier.map((c, k) => ({ state: compacted[k]!, placed: c.placed }));
    }
    return undefined;
  };

  for (const e of events) {
    if (e.kind === 0) {
      open.push(e.index);
      continue;
    }
    const failure = complete(e.index, 'fits nowhere before it completed');
    if (failure !== undefined) return failure;
  }
  // Unknown outcomes known to have taken effect must be placed somewhere after their invocation.
  // (Placing one may place others, which then leave the open list: look again each time.)
  for (let i = open.find((j) => ops[j]!.required === true); i !== undefined; i = open.find((j) => ops[j]!.required === true)) {
    const failure = complete(i, 'is known to have taken effect but fits nowhere after its invocation');
    if (failure !== undefined) return failure;
  }
  return { ok: true, states };
}

function insertSorted(list: readonly number[], value: number): number[] {
  const out: number[] = [];
  let inserted = false;
  for (const x of list) {
    if (!inserted && value < x) {
      out.push(value);
      inserted = true;
    }
    out.push(x);
  }
  if (!inserted) out.push(value);
  return out;
}

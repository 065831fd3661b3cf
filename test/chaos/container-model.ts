// The container table (rules in container-rules.ts) as a persistent model for the frontier
// linearizability checker (test/checker/frontier.ts), and the translation of a recorded chaos
// history into the checker's operations. STALE reads are not linearizable by design and are left
// out (post-heal checks look at them).
//
// A state is the id counter and an overlay of the containers whose state differs from a base table
// that every live state shares. Between events the checker hands over the live states and what they
// all agree on moves into the base, so a state stays as small as the disagreement between the
// possible orders (usually nothing), while the base holds the hundred thousand containers of a long
// run once. A state's key is exact (the counter and its sorted overlay), never a hash.
import { checkLinearizableFrontier, type PersistentModel } from '../checker/frontier.js';
import type { CheckResult, Operation } from '../checker/linearizability.js';
import type { LifeCycleState } from '../../src/api/scm-api.js';
import { effectOf, independent, type ModelOp, type TableView } from './container-rules.js';
import type { HistoryEntry, ListedContainer } from './history.js';

export type { ModelOp } from './container-rules.js';

export interface TableState {
  readonly nextId: number;
  /** Containers whose state is not the base table's (including all those the base does not have). */
  readonly overlay: ReadonlyMap<number, LifeCycleState>;
}

const NO_CHANGES: ReadonlyMap<number, LifeCycleState> = new Map();

export class ContainerTable implements PersistentModel<TableState, ModelOp> {
  /** What every live state agrees on (see compact). */
  private readonly base = new Map<number, LifeCycleState>();

  /**
   * The empty table. A table checks one history: compact fills the base, which every state reads
   * through, so a second check would start from the first one's containers.
   */
  get initial(): TableState {
    if (this.base.size > 0) throw new Error('a ContainerTable checks one history: make a new one for the next');
    return { nextId: 1, overlay: NO_CHANGES };
  }

  private view(state: TableState): TableView {
    return { nextId: state.nextId, stateOf: (id) => state.overlay.get(id) ?? this.base.get(id) };
  }

  step(state: TableState, op: ModelOp, unknownOutcome: boolean): TableState | undefined {
    const effect = effectOf(op, this.view(state), unknownOutcome);
    switch (effect?.kind) {
      case undefined:
        return undefined;
      case 'none':
        return state;
      case 'allocate':
        return { nextId: state.nextId + 1, overlay: this.with(state.overlay, effect.id, 'OPEN') };
      case 'set':
        return { nextId: state.nextId, overlay: this.with(state.overlay, effect.id, effect.state) };
    }
  }

  /** A copy of `overlay` with `id` in `state`; an entry equal to the base is dropped, so keys stay canonical. */
  private with(overlay: ReadonlyMap<number, LifeCycleState>, id: number, state: LifeCycleState): ReadonlyMap<number, LifeCycleState> {
    const copy = new Map(overlay);
    if (this.base.get(id) === state) copy.delete(id);
    else copy.set(id, state);
    return copy;
  }

  independent(a: ModelOp, b: ModelOp): boolean {
    return independent(a, b);
  }

  key(state: TableState): string {
    if (state.overlay.size === 0) return String(state.nextId);
    const entries = [...state.overlay].sort((a, b) => a[0] - b[0]).map(([id, s]) => `${id}=${s}`);
    return `${state.nextId};${entries.join(',')}`;
  }

  describe(state: TableState): string {
    const last: string[] = [];
    for (let id = Math.max(1, state.nextId - 5); id < state.nextId; id++) last.push(`#${id}=${state.overlay.get(id) ?? this.base.get(id) ?? 'absent'}`);
    return `next id ${state.nextId} (last: ${last.join(' ')})`;
  }

  /** Moves every container all live states agree on into the base; the states keep only where they differ. */
  compact(states: readonly TableState[]): readonly TableState[] {
    const [first, ...others] = states;
    if (first === undefined || first.overlay.size === 0) return states;
    const shared: number[] = [];
    for (const [id, s] of first.overlay) if (others.every((o) => o.overlay.get(id) === s)) shared.push(id);
    if (shared.length === 0) return states;
    for (const id of shared) this.base.set(id, first.overlay.get(id)!);
    return states.map((state) => {
      if (state.overlay.size === shared.length) return { nextId: state.nextId, overlay: NO_CHANGES };
      const overlay = new Map(state.overlay);
      for (const id of shared) overlay.delete(id);
      return { nextId: state.nextId, overlay };
    });
  }
}

export function describeCall(entry: HistoryEntry): string {
  const c = entry.call;
  const o = entry.outcome;
  const what =
    c.kind === 'allocate' ? `allocate owner=${c.owner}` :
    c.kind === 'update' ? `update #${c.id} ${c.event}` :
    c.kind === 'get' ? `get #${c.id} ${c.consistency}` :
    `list from ${c.startId} count ${c.count} ${c.consistency}`;
  const result =
    o.type !== 'ok' ? `${o.type} ${o.code}` :
    o.id !== undefined ? `-> #${o.id}` :
    o.state !== undefined ? `-> ${o.state}` :
    `-> [${(o.containers ?? []).map((x) => `${x.id}:${x.state}`).join(' ')}]`;
  return `${entry.client}${entry.callId !== undefined ? `#${entry.callId}` : ''} ${what} ${result}`;
}

/** A recorded call as the checker's operation; its label is written only if a report needs it. */
class RecordedCall implements Operation<ModelOp> {
  constructor(
    private readonly entry: HistoryEntry,
    readonly op: ModelOp,
    readonly invoke: number,
    readonly complete: number,
    readonly required: boolean,
  ) {}

  get label(): string {
    const took = this.op.resolvedId !== undefined ? ` (took #${this.op.resolvedId})` : '';
    return `${describeCall(this.entry)}${took}`;
  }
}

/**
 * What is wrong with a recorded history's times, or undefined. Each chaos client makes one call at
 * a time (workload.ts: it re-sends an unanswered call until it has an answer), so each of its calls
 * was invoked after its previous one completed, and only its last may lack a completion. The
 * checkers know real time only from the recorded times and take calls sharing an instant as
 * concurrent: a clock too coarse to tell a client's next call from its previous answer would let a
 * stale read of the client's own acknowledged write pass. (The generated histories of the tests
 * abandon unanswered calls, so this is asked of recorded ones only: run.ts, check-cli.ts.)
 */
export function recordedOrderProblem(history: readonly HistoryEntry[]): string | undefined {
  const last = new Map<string, HistoryEntry>();
  for (const entry of history) {
    if (!Number.isFinite(entry.invoke) || (entry.complete !== null && !(Number.isFinite(entry.complete) && entry.complete >= entry.invoke))) {
      return `malformed history: ${describeCall(entry)} is invoked at ${entry.invoke} and completes at ${entry.complete}`;
    }
    const previous = last.get(entry.client);
    if (previous !== undefined && (previous.complete === null || entry.invoke <= previous.complete)) {
      return `malformed history: ${entry.client}'s call ${describeCall(entry)} is invoked at ${entry.invoke}, not after its previous call ${describeCall(previous)} completed (${previous.complete ?? 'never'}); a client makes one call at a time, so the clock must tell them apart`;
    }
    last.set(entry.client, entry);
  }
  return undefined;
}

/**
 * The LINEARIZABLE part of a history as the checker's operations. `finalTable` (read after healing)
 * tells which unknown allocations took effect and with which id: such a call must be placed, one
 * that is not in the table is left out. Failed reads observed nothing and are left out.
 */
export function containerOperations(history: readonly HistoryEntry[], finalTable: readonly ListedContainer[]): Operation<ModelOp>[] {
  const idByOwner = new Map(finalTable.map((c) => [c.owner, c.id]));
  const ops: Operation<ModelOp>[] = [];
  for (const entry of history) {
    const { call, outcome } = entry;
    if ((call.kind === 'get' || call.kind === 'list') && (call.consistency !== 'LINEARIZABLE' || outcome.type !== 'ok')) continue;
    // A refused allocation has no place in the table (post-heal checks that it left no container).
    if (call.kind === 'allocate' && outcome.type === 'fail') continue;
    if (outcome.type === 'unknown') {
      if (call.kind === 'allocate') {
        const id = idByOwner.get(call.owner);
        if (id === undefined) continue; // never took effect
        ops.push(new RecordedCall(entry, { call, outcome, resolvedId: id }, entry.invoke, Infinity, true));
      } else {
        ops.push(new RecordedCall(entry, { call, outcome }, entry.invoke, Infinity, false));
      }
      continue;
    }
    ops.push(new RecordedCall(entry, { call, outcome }, entry.invoke, entry.complete ?? Infinity, false));
  }
  return ops;
}

/**
 * Checks the LINEARIZABLE part of a history against the container table, walking it in time order
 * (test/checker/frontier.ts): memory is what the open calls leave undecided, not the history.
 */
export function checkContainerHistory(history: readonly HistoryEntry[], finalTable: readonly ListedContainer[], maxConfigurationsPerStep?: number): CheckResult {
  return checkLinearizableFrontier(containerOperations(history, finalTable), new ContainerTable(), maxConfigurationsPerStep === undefined ? {} : { maxConfigurationsPerStep });
}

// The container table and its id sequence as a sequential specification: what a single correct SCM
// would do with each recorded call. An allocation takes the next id (ids are handed out one by one
// in apply order, with no gaps: a refused allocation consumes none) and creates an OPEN container; a
// state change follows the lifecycle table; reads return the table. Both table representations
// (the persistent one the frontier checker steps through, the mutable one the Wing–Gong search
// undoes) take their rules from here, so they cannot disagree on what is legal.
import { LIFECYCLE_TRANSITIONS } from '../../src/statemachine/lifecycle.js';
import type { LifeCycleState } from '../../src/api/scm-api.js';
import type { ChaosCall, ChaosOutcome, ListedContainer } from './history.js';

/** A call as the model sees it: the recorded call and the answer it must be consistent with. */
export interface ModelOp {
  readonly call: ChaosCall;
  /** For an unknown allocation found in the final table: the id it took. */
  readonly resolvedId?: number;
  readonly outcome: ChaosOutcome;
}

/** What a rule needs to see of the table. */
export interface TableView {
  readonly nextId: number;
  stateOf(id: number): LifeCycleState | undefined;
}

/** What a legal call does to the table. */
export type Effect =
  | { readonly kind: 'none' }
  | { readonly kind: 'allocate'; readonly id: number }
  | { readonly kind: 'set'; readonly id: number; readonly state: LifeCycleState };

const NONE: Effect = { kind: 'none' };

/**
 * The effect of `op` on `table` if the call is legal there with the answer it got; undefined if it
 * is not. With `unknownOutcome`, the call is being placed as having taken effect (one that did not
 * is left out of the order instead).
 */
export function effectOf(op: ModelOp, table: TableView, unknownOutcome: boolean): Effect | undefined {
  const { call, outcome } = op;
  const answer = outcome.type === 'ok' ? outcome : undefined;
  switch (call.kind) {
    case 'allocate': {
      const id = op.resolvedId ?? answer?.id;
      if (outcome.type === 'fail' || id !== table.nextId) return undefined;
      return { kind: 'allocate', id };
    }
    case 'update': {
      const current = table.stateOf(call.id);
      const next = current === undefined ? undefined : LIFECYCLE_TRANSITIONS[call.event][current];
      if (unknownOutcome) {
        // It took effect here, or (when it could not) it is left out of the order altogether.
        if (next === undefined) return undefined;
      } else if (outcome.type === 'fail') {
        if (outcome.code === 'NOT_FOUND') return current === undefined ? NONE : undefined;
        return current !== undefined && next === undefined ? NONE : undefined;
      } else if (next === undefined || answer?.state !== next) return undefined;
      return { kind: 'set', id: call.id, state: next };
    }
    case 'get':
      return answer?.state === (table.stateOf(call.id) ?? 'absent') ? NONE : undefined;
    case 'list': {
      const listed = answer?.containers ?? [];
      const first = Math.max(call.startId, 1);
      const expected = Math.max(0, Math.min(table.nextId - first, call.count));
      if (listed.length !== expected) return undefined;
      for (let i = 0; i < expected; i++) {
        const c = listed[i] as ListedContainer;
        if (c.id !== first + i || table.stateOf(c.id) !== c.state) return undefined;
      }
      return NONE;
    }
  }
}

/** What a call may read or change: the id counter, and a range of container ids. */
interface Footprint {
  readonly counter: 'read' | 'write' | undefined;
  /** Container ids [from, to). */
  readonly from: number;
  readonly to: number;
  /** Whether it may change the containers in its range (or the counter, when it touches it). */
  readonly writes: boolean;
}

/** Each call's footprint, worked out once: the checker asks about the same open calls again and again. */
const footprints = new WeakMap<ModelOp, Footprint>();

function footprint(op: ModelOp): Footprint {
  let known = footprints.get(op);
  if (known === undefined) {
    known = footprintOf(op);
    footprints.set(op, known);
  }
  return known;
}

function footprintOf(op: ModelOp): Footprint {
  const call = op.call;
  switch (call.kind) {
    case 'allocate': {
      const id = op.resolvedId ?? (op.outcome.type === 'ok' ? op.outcome.id : undefined);
      // An allocation without an id is never legal; touching everything keeps it conservative.
      return id === undefined ? { counter: 'write', from: 0, to: Infinity, writes: true } : { counter: 'write', from: id, to: id + 1, writes: true };
    }
    case 'update':
      return { counter: undefined, from: call.id, to: call.id + 1, writes: true };
    case 'get':
      return { counter: undefined, from: call.id, to: call.id + 1, writes: false };
    case 'list': {
      const first = Math.max(call.startId, 1);
      return { counter: 'read', from: first, to: first + call.count, writes: false };
    }
  }
}

/**
 * Whether two calls commute in every table: neither changes what the other reads or changes. Reads
 * commute with reads; an allocation conflicts with every allocation and list (the counter) and with
 * calls on its own id; an update conflicts with calls on its id and lists that cover it.
 */
export function independent(a: ModelOp, b: ModelOp): boolean {
  const fa = footprint(a);
  const fb = footprint(b);
  if (!fa.writes && !fb.writes) return true;
  const counter = fa.counter !== undefined && fb.counter !== undefined && (fa.counter === 'write' || fb.counter === 'write');
  const containers = fa.from < fb.to && fb.from < fa.to;
  return !counter && !containers;
}

// The container table and its id sequence as a sequential specification for the linearizability
// checker (test/checker/linearizability.ts), and the translation of a recorded chaos history into
// the checker's operations.
//
// The model is what a single correct SCM would do: an allocation takes the next id (ids are handed
// out one by one in apply order, with no gaps: a refused allocation consumes none) and creates an
// OPEN container; a state change follows the lifecycle table; reads return the table. STALE reads
// are not linearizable by design and are left out (post-heal checks look at them).
import { checkLinearizable, type CheckResult, type Model, type Operation } from '../checker/linearizability.js';
import { LIFECYCLE_TRANSITIONS } from '../../src/statemachine/lifecycle.js';
import type { LifeCycleState } from '../../src/api/scm-api.js';
import type { ChaosCall, ChaosOutcome, HistoryEntry, ListedContainer } from './history.js';

/** A call as the model sees it: the recorded call and the answer it must be consistent with. */
export interface ModelOp {
  readonly call: ChaosCall;
  /** For an unknown allocation found in the final table: the id it took. */
  readonly resolvedId?: number;
  readonly outcome: ChaosOutcome;
}

/** Zobrist-style 32-bit mixes of (id, state), xor-ed into two words as the table changes. */
function mix(id: number, state: string, salt: number): number {
  let h = (Math.imul(id, 0x9e3779b1) ^ salt) >>> 0;
  for (let i = 0; i < state.length; i++) h = Math.imul(h ^ state.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

export class ContainerTableModel implements Model<ModelOp> {
  private readonly states = new Map<number, LifeCycleState>();
  private nextId = 1;
  private h1 = 0;
  private h2 = 0;

  private set(id: number, state: LifeCycleState | undefined): void {
    const old = this.states.get(id);
    if (old !== undefined) {
      this.h1 ^= mix(id, old, 0x1234567);
      this.h2 ^= mix(id, old, 0x7654321);
    }
    if (state === undefined) this.states.delete(id);
    else {
      this.states.set(id, state);
      this.h1 ^= mix(id, state, 0x1234567);
      this.h2 ^= mix(id, state, 0x7654321);
    }
    this.h1 >>>= 0;
    this.h2 >>>= 0;
  }

  apply(op: ModelOp, unknownOutcome: boolean): (() => void) | undefined {
    const { call, outcome } = op;
    const answer = outcome.type === 'ok' ? outcome : undefined;
    const none = (): void => undefined;
    switch (call.kind) {
      case 'allocate': {
        const id = op.resolvedId ?? answer?.id;
        if (outcome.type === 'fail' || id !== this.nextId) return undefined;
        this.nextId++;
        this.set(id, 'OPEN');
        return () => {
          this.set(id, undefined);
          this.nextId--;
        };
      }
      case 'update': {
        const current = this.states.get(call.id);
        const next = current === undefined ? undefined : LIFECYCLE_TRANSITIONS[call.event][current];
        if (unknownOutcome) {
          // It took effect here, or (when it could not) it is left out of the order altogether.
          if (current === undefined || next === undefined) return undefined;
        } else if (outcome.type === 'fail') {
          if (outcome.code === 'NOT_FOUND') return current === undefined ? none : undefined;
          return current !== undefined && next === undefined ? none : undefined;
        } else if (next === undefined || answer?.state !== next) return undefined;
        this.set(call.id, next);
        return () => this.set(call.id, current);
      }
      case 'get': {
        const current = this.states.get(call.id) ?? 'absent';
        return answer?.state === current ? none : undefined;
      }
      case 'list': {
        const listed = answer?.containers ?? [];
        const first = Math.max(call.startId, 1);
        const expected = Math.max(0, Math.min(this.nextId - first, call.count));
        if (listed.length !== expected) return undefined;
        for (let i = 0; i < expected; i++) {
          const c = listed[i] as ListedContainer;
          if (c.id !== first + i || this.states.get(c.id) !== c.state) return undefined;
        }
        return none;
      }
    }
  }

  fingerprint(): string {
    return `${this.nextId}:${this.h1}:${this.h2}`;
  }

  describe(): string {
    const last = [...this.states].slice(-5).map(([id, s]) => `#${id}=${s}`);
    return `next id ${this.nextId}, ${this.states.size} containers (last: ${last.join(' ')})`;
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

/**
 * Checks the LINEARIZABLE part of a history against the model. `finalTable` (read after healing)
 * tells which unknown allocations took effect and with which id: such a call must be placed, one
 * that is not in the table is left out. Failed reads observed nothing and are left out.
 */
export function checkContainerHistory(history: readonly HistoryEntry[], finalTable: readonly ListedContainer[], maxStates?: number): CheckResult {
  const idByOwner = new Map(finalTable.map((c) => [c.owner, c.id]));
  const ops: Operation<ModelOp>[] = [];
  for (const entry of history) {
    const { call, outcome } = entry;
    if ((call.kind === 'get' || call.kind === 'list') && (call.consistency !== 'LINEARIZABLE' || outcome.type !== 'ok')) continue;
    // A refused allocation has no place in the table (post-heal checks that it left no container).
    if (call.kind === 'allocate' && outcome.type === 'fail') continue;
    const label = describeCall(entry);
    if (outcome.type === 'unknown') {
      if (call.kind === 'allocate') {
        const id = idByOwner.get(call.owner);
        if (id === undefined) continue; // never took effect
        ops.push({ op: { call, outcome, resolvedId: id }, invoke: entry.invoke, complete: Infinity, required: true, label: `${label} (took #${id})` });
      } else {
        ops.push({ op: { call, outcome }, invoke: entry.invoke, complete: Infinity, label });
      }
      continue;
    }
    ops.push({ op: { call, outcome }, invoke: entry.invoke, complete: entry.complete ?? Infinity, label });
  }
  return checkLinearizable(ops, new ContainerTableModel(), maxStates);
}

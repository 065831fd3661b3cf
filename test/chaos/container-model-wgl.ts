// The container table as a mutable model with undo, for the Wing–Gong search
// (test/checker/linearizability.ts): the check the chaos runs used before the frontier checker. It is
// kept as the reference the frontier check is compared with (the differential test, and
// `npm run chaos:check -- --checker wgl`); the rules are container-rules.ts's, shared with the
// frontier's persistent table.
import { checkLinearizable, type CheckResult, type Model } from '../checker/linearizability.js';
import type { LifeCycleState } from '../../src/api/scm-api.js';
import { containerOperations } from './container-model.js';
import { effectOf, type ModelOp } from './container-rules.js';
import type { HistoryEntry, ListedContainer } from './history.js';

/** Zobrist-style 32-bit mixes of (id, state), xor-ed into two words as the table changes. */
function mix(id: number, state: string, salt: number): number {
  let h = (Math.imul(id, 0x9e3779b1) ^ salt) >>> 0;
  for (let i = 0; i < state.length; i++) h = Math.imul(h ^ state.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

export class ContainerTableModel implements Model<ModelOp> {
  private readonly states = new Map<number, LifeCycleState>();
  nextId = 1;
  private h1 = 0;
  private h2 = 0;

  stateOf(id: number): LifeCycleState | undefined {
    return this.states.get(id);
  }

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
    const effect = effectOf(op, this, unknownOutcome);
    switch (effect?.kind) {
      case undefined:
        return undefined;
      case 'none':
        return () => undefined;
      case 'allocate':
        this.nextId++;
        this.set(effect.id, 'OPEN');
        return () => {
          this.set(effect.id, undefined);
          this.nextId--;
        };
      case 'set': {
        const before = this.states.get(effect.id);
        this.set(effect.id, effect.state);
        return () => this.set(effect.id, before);
      }
    }
  }

  fingerprint(): string {
    return `${this.nextId}:${this.h1}:${this.h2}`;
  }

  describe(): string {
    // The search asks at every new depth, so this looks at the last few ids only (copying the whole
    // table here made the search quadratic in the number of containers).
    const last: string[] = [];
    for (let id = Math.max(1, this.nextId - 5); id < this.nextId; id++) last.push(`#${id}=${this.states.get(id) ?? 'absent'}`);
    return `next id ${this.nextId}, ${this.states.size} containers (last: ${last.join(' ')})`;
  }
}

/** The linearizable part of a history checked by the Wing–Gong search (the reference check). */
export function checkContainerHistoryWgl(history: readonly HistoryEntry[], finalTable: readonly ListedContainer[], maxStates?: number): CheckResult {
  return checkLinearizable(containerOperations(history, finalTable), new ContainerTableModel(), maxStates);
}

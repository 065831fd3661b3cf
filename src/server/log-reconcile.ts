// At start-up the Raft log and scm.db must agree on where the state machine stands. They can only
// disagree after a snapshot install that crashed between replacing scm.db and resetting the log:
// scm.db is then ahead of the log, or the log holds another term at the applied index (entries of
// a deposed leader that the snapshot superseded). The log then restarts right after the applied
// point; keeping divergent entries below the commit index would let them be acknowledged.
import type { RaftLogStore } from './raft-ports.js';
import type { TermIndex } from '../statemachine/index.js';

export type Reconciliation = 'in-agreement' | 'log-reset';

export async function reconcileLogWithStateMachine(storage: RaftLogStore, applied: TermIndex, where: string): Promise<Reconciliation> {
  const termAtApplied = applied.index === 0 ? 0 : storage.term(applied.index);
  let outcome: Reconciliation = 'in-agreement';
  if (storage.lastIndex() < applied.index || (termAtApplied !== undefined && termAtApplied !== applied.term)) {
    await storage.reset(applied.index + 1, applied.term);
    outcome = 'log-reset';
  }
  if (storage.firstIndex() > applied.index + 1) {
    throw new Error(
      `Raft log in ${where} starts at index ${storage.firstIndex()} but scm.db has applied only ${applied.term}#${applied.index}: entries in between are missing`,
    );
  }
  return outcome;
}

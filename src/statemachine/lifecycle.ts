// The container lifecycle as Ozone's SCM runs it (ContainerStateManagerImpl): the forward
// transitions, plus "idempotent" self-transitions so a repeated event (e.g. a retried FINALIZE on a
// container that already went further) is a no-op rather than an error. Anything else is invalid.
//
// RECOVERING is a LifeCycleState in HddsProtos but Ozone's SCM has no LifeCycleEvent into or out of
// it (datanodes use it while reconstructing EC replicas), so every event on a RECOVERING container
// is rejected. Beyond Ozone, CLOSE is also accepted on QUASI_CLOSED (→ CLOSED), as this project's
// issue specifies.
import { InvalidStateTransitionError } from '../errors.js';
import type { LifeCycleEvent, LifeCycleState } from './model.js';

type TransitionTable = Readonly<Record<LifeCycleEvent, Readonly<Partial<Record<LifeCycleState, LifeCycleState>>>>>;

export const LIFECYCLE_TRANSITIONS: TransitionTable = Object.freeze({
  FINALIZE: { OPEN: 'CLOSING', CLOSING: 'CLOSING', QUASI_CLOSED: 'QUASI_CLOSED', CLOSED: 'CLOSED', DELETING: 'DELETING', DELETED: 'DELETED' },
  QUASI_CLOSE: { CLOSING: 'QUASI_CLOSED', QUASI_CLOSED: 'QUASI_CLOSED', CLOSED: 'CLOSED', DELETING: 'DELETING', DELETED: 'DELETED' },
  CLOSE: { CLOSING: 'CLOSED', QUASI_CLOSED: 'CLOSED', CLOSED: 'CLOSED', DELETING: 'DELETING', DELETED: 'DELETED' },
  FORCE_CLOSE: { QUASI_CLOSED: 'CLOSED', CLOSED: 'CLOSED', DELETING: 'DELETING', DELETED: 'DELETED' },
  DELETE: { CLOSED: 'DELETING', DELETING: 'DELETING', DELETED: 'DELETED' },
  CLEANUP: { DELETING: 'DELETED', DELETED: 'DELETED' },
});

/**
 * The state a container in `current` moves to on `event` (equal to `current` for an idempotent
 * repeat). Throws InvalidStateTransitionError naming the container, event and current state.
 */
export function nextLifeCycleState(containerId: number, current: LifeCycleState, event: LifeCycleEvent): LifeCycleState {
  const next = LIFECYCLE_TRANSITIONS[event][current];
  if (next === undefined) {
    throw new InvalidStateTransitionError(
      `container ${containerId}: invalid lifecycle event ${event} in current state ${current}`,
    );
  }
  return next;
}

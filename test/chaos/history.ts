// What the chaos workload records: one entry per logical call, with its invocation and completion
// time (ms since the run started) and outcome. A mutation re-sent with the same clientId/callId
// after an unknown outcome stays one entry: invoked when first sent, completed at its final answer.
import type { LifeCycleEvent, LifeCycleState, ReadConsistency } from '../../src/api/scm-api.js';

export type ChaosCall =
  | { readonly kind: 'allocate'; readonly owner: string }
  | { readonly kind: 'update'; readonly id: number; readonly event: LifeCycleEvent }
  | { readonly kind: 'get'; readonly id: number; readonly consistency: ReadConsistency }
  | { readonly kind: 'list'; readonly startId: number; readonly count: number; readonly consistency: ReadConsistency };

export interface ListedContainer {
  readonly id: number;
  readonly state: LifeCycleState;
  readonly owner: string;
}

/**
 * ok: the answer (an allocation's id, a container's state, a list, or `absent` for NOT_FOUND on a
 * read); fail: a definite refusal (the call did not take effect); unknown: no answer in time.
 */
export type ChaosOutcome =
  | { readonly type: 'ok'; readonly id?: number; readonly state?: LifeCycleState | 'absent'; readonly containers?: readonly ListedContainer[] }
  | { readonly type: 'fail'; readonly code: string; readonly message: string }
  | { readonly type: 'unknown'; readonly code: string; readonly message: string };

export interface HistoryEntry {
  readonly client: string;
  /** The callId of a mutation (every re-send uses it); undefined for reads. */
  readonly callId?: number;
  readonly call: ChaosCall;
  readonly invoke: number;
  /** When the final answer came; null while unknown. */
  complete: number | null;
  outcome: ChaosOutcome;
  /** How many times the call was sent (re-sends after an unknown outcome included). */
  sends: number;
}

export function isMutation(call: ChaosCall): boolean {
  return call.kind === 'allocate' || call.kind === 'update';
}

/** The owner string an allocation records: it names the call, so its effect can be found later. */
export function ownerOf(client: string, callId: number): string {
  return `${client}/${callId}`;
}

/** gRPC codes after which a mutation certainly did not take effect (the server refused it). */
const DEFINITE_FAILURES = new Set(['NOT_FOUND', 'FAILED_PRECONDITION', 'INVALID_ARGUMENT', 'ALREADY_EXISTS', 'OUT_OF_RANGE']);

export function isDefiniteFailure(code: string): boolean {
  return DEFINITE_FAILURES.has(code);
}

// Readiness of a node for client traffic, derived from its NodeStatus: it must be a voting member
// (leader or follower; not one removed from the group) that knows the current leader, and its state machine must have applied
// nearly everything known committed, so reads it serves are not far behind the quorum.
import type { NodeStatus, Readiness } from './http-server.js';

export interface ReadinessPolicy {
  /** Largest commit - applied gap still considered ready. */
  readonly maxAppliedLag: number;
}

export const DEFAULT_READINESS_POLICY: ReadinessPolicy = { maxAppliedLag: 1000 };

export function assessReadiness(status: NodeStatus, policy: ReadinessPolicy = DEFAULT_READINESS_POLICY): Readiness {
  if (!Number.isSafeInteger(policy.maxAppliedLag) || policy.maxAppliedLag < 0) {
    throw new Error(`maxAppliedLag must be a non-negative integer, got ${String(policy.maxAppliedLag)}`);
  }
  if (status.removedFromGroup !== null) {
    return { ready: false, reason: `removed from the group at index ${status.removedFromGroup.index}; it serves no clients until an administrator adds it back` };
  }
  if (status.role !== 'leader' && status.role !== 'follower') {
    return { ready: false, reason: `role is ${status.role}, not a voting member with a leader` };
  }
  if (status.leaderId === null) {
    return { ready: false, reason: `no known leader in term ${status.term}` };
  }
  if (status.role === 'leader' && status.leaderId !== status.nodeId) {
    return { ready: false, reason: `role is leader but leader id is ${status.leaderId}` };
  }
  const lag = status.indexes.commit - status.indexes.applied;
  if (lag > policy.maxAppliedLag) {
    return {
      ready: false,
      reason: `applied index ${status.indexes.applied} is ${lag} behind commit index ${status.indexes.commit} (limit ${policy.maxAppliedLag})`,
    };
  }
  return {
    ready: true,
    reason: `${status.role} in term ${status.term}, leader ${status.leaderId}, applied ${status.indexes.applied}/${status.indexes.commit}`,
  };
}

// The SCM objects the state machine keeps: containers, pipelines and datanodes, with the enums of
// Ozone's HddsProtos (defined in src/scm-types.ts, shared with the client API). Objects handed out
// are frozen: the state machine replaces, never mutates, them.
import type { DatanodePort, LifeCycleState, PipelineState, ReplicationFactor, ReplicationType } from '../scm-types.js';

export {
  FACTOR_MEMBERS,
  LIFE_CYCLE_EVENTS,
  LIFE_CYCLE_STATES,
  PIPELINE_STATES,
  REPLICATION_FACTORS,
  REPLICATION_TYPES,
  type DatanodePort,
  type LifeCycleEvent,
  type LifeCycleState,
  type PipelineState,
  type ReplicationFactor,
  type ReplicationType,
} from '../scm-types.js';

export interface ContainerInfo {
  readonly containerID: number;
  readonly state: LifeCycleState;
  readonly pipelineID: string;
  readonly usedBytes: number;
  readonly numberOfKeys: number;
  /** Milliseconds since the epoch, from the command that moved the container into `state`. */
  readonly stateEnterTime: number;
  readonly owner: string;
  readonly deleteTransactionId: number;
  readonly sequenceId: number;
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
}

export interface PipelineInfo {
  readonly id: string;
  /** Datanode uuids, in the order the leader gave them. */
  readonly members: readonly string[];
  readonly state: PipelineState;
  readonly type: ReplicationType;
  readonly factor: ReplicationFactor;
  /** A member's uuid, or '' when the pipeline has no known leader. */
  readonly leaderId: string;
  readonly creationTimestamp: number;
}

export interface DatanodeInfo {
  readonly uuid: string;
  readonly hostname: string;
  readonly ipAddress: string;
  readonly ports: readonly DatanodePort[];
}

export function isOneOf<T extends string>(values: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (values as readonly string[]).includes(value);
}

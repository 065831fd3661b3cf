// The SCM objects the state machine keeps: containers, pipelines and datanodes, with the enums of
// Ozone's HddsProtos. Objects handed out are frozen: the state machine replaces, never mutates, them.

export const LIFE_CYCLE_STATES = ['OPEN', 'CLOSING', 'QUASI_CLOSED', 'CLOSED', 'DELETING', 'DELETED', 'RECOVERING'] as const;
export type LifeCycleState = (typeof LIFE_CYCLE_STATES)[number];

export const LIFE_CYCLE_EVENTS = ['FINALIZE', 'QUASI_CLOSE', 'CLOSE', 'FORCE_CLOSE', 'DELETE', 'CLEANUP'] as const;
export type LifeCycleEvent = (typeof LIFE_CYCLE_EVENTS)[number];

export const REPLICATION_TYPES = ['RATIS', 'STAND_ALONE', 'EC'] as const;
export type ReplicationType = (typeof REPLICATION_TYPES)[number];

export const REPLICATION_FACTORS = ['ONE', 'THREE'] as const;
export type ReplicationFactor = (typeof REPLICATION_FACTORS)[number];

export const PIPELINE_STATES = ['ALLOCATED', 'OPEN', 'DORMANT', 'CLOSED'] as const;
export type PipelineState = (typeof PIPELINE_STATES)[number];

/** How many datanodes a pipeline of this factor has. */
export function replicationFactorCount(factor: ReplicationFactor): number {
  return factor === 'ONE' ? 1 : 3;
}

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

export interface DatanodePort {
  readonly name: string;
  readonly value: number;
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

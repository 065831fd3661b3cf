// The SCM's domain vocabulary, shared by the state machine (what is stored) and the client API (what
// is sent): the enums of Ozone's HddsProtos, how many datanodes a pipeline of each factor has, a
// datanode's named port. One definition, so the API and what is stored cannot drift apart.
// Imports nothing of ours, so every folder may use it.

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

/** How many datanodes a pipeline of each factor has. */
export const FACTOR_MEMBERS: Readonly<Record<ReplicationFactor, number>> = { ONE: 1, THREE: 3 };

export interface DatanodePort {
  readonly name: string;
  readonly value: number;
}

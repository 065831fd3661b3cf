// What each SCM command does to the state. Runs during apply, so it is deterministic: it reads only
// the command and the replicated state; the time is the command's timestamp. Failures are thrown as
// typed ScmErrors before anything is changed, so a failed command leaves the state untouched.
import type { CreatePipelineCommand, PipelineStateCommand, RegisterDatanodeCommand, ScmCommand } from './commands.js';
import { AlreadyExistsError, InvalidStateTransitionError, NoPipelineError, NotFoundError } from '../errors.js';
import { nextLifeCycleState } from './lifecycle.js';
import type { ContainerInfo, DatanodeInfo, LifeCycleEvent, PipelineInfo, PipelineState } from './model.js';
import type { CommandValue } from './records.js';
import type { ScmState } from './scm-state.js';

export function executeCommand(state: ScmState, cmd: ScmCommand): CommandValue {
  switch (cmd.type) {
    case 'allocateContainer':
      return { kind: 'container', container: allocateContainer(state, cmd) };
    case 'updateContainerState':
      return { kind: 'container', container: updateContainerState(state, cmd.containerId, cmd.event, cmd.timestamp) };
    case 'createPipeline':
      return { kind: 'pipeline', pipeline: createPipeline(state, cmd) };
    case 'openPipeline':
    case 'closePipeline':
    case 'deactivatePipeline':
    case 'activatePipeline':
      return { kind: 'pipeline', pipeline: changePipelineState(state, cmd) };
    case 'registerDatanode':
      return { kind: 'datanode', datanode: registerDatanode(state, cmd) };
    case 'markConsistency':
      return { kind: 'marker' };
  }
}

function allocateContainer(state: ScmState, cmd: Extract<ScmCommand, { type: 'allocateContainer' }>): ContainerInfo {
  const pipeline = state.getPipeline(cmd.pipelineId);
  if (pipeline === undefined) {
    throw new NoPipelineError(`cannot allocate a container on pipeline ${cmd.pipelineId}: no such pipeline`);
  }
  if (pipeline.state !== 'OPEN') {
    throw new NoPipelineError(`cannot allocate a container on pipeline ${pipeline.id}: it is ${pipeline.state}, not OPEN`);
  }
  if (pipeline.type !== cmd.replicationType || pipeline.factor !== cmd.replicationFactor) {
    throw new NoPipelineError(
      `cannot allocate a ${cmd.replicationType}/${cmd.replicationFactor} container on pipeline ${pipeline.id}: ` +
        `it is ${pipeline.type}/${pipeline.factor}`,
    );
  }
  const container: ContainerInfo = Object.freeze({
    containerID: state.lastContainerId + 1,
    state: 'OPEN',
    pipelineID: pipeline.id,
    usedBytes: 0,
    numberOfKeys: 0,
    stateEnterTime: cmd.timestamp,
    owner: cmd.owner,
    deleteTransactionId: 0,
    sequenceId: 0,
    replicationType: cmd.replicationType,
    replicationFactor: cmd.replicationFactor,
  });
  state.putContainer(container);
  return container;
}

export function updateContainerState(
  state: ScmState,
  containerId: number,
  event: LifeCycleEvent,
  timestamp: number,
): ContainerInfo {
  const container = state.getContainer(containerId);
  if (container === undefined) throw new NotFoundError(`container ${containerId} does not exist`);
  const next = nextLifeCycleState(containerId, container.state, event);
  if (next === container.state) return container; // an idempotent repeat: nothing changes
  const updated: ContainerInfo = Object.freeze({ ...container, state: next, stateEnterTime: timestamp });
  state.putContainer(updated);
  return updated;
}

function createPipeline(state: ScmState, cmd: CreatePipelineCommand): PipelineInfo {
  if (state.getPipeline(cmd.pipelineId) !== undefined) {
    throw new AlreadyExistsError(`pipeline ${cmd.pipelineId} already exists`);
  }
  cmd.members.forEach((uuid, i) => {
    if (state.getDatanode(uuid) === undefined) {
      throw new NotFoundError(`members[${i}]: datanode ${uuid} is not registered`);
    }
  });
  const pipeline: PipelineInfo = Object.freeze({
    id: cmd.pipelineId,
    members: Object.freeze([...cmd.members]),
    state: cmd.initialState ?? 'OPEN',
    type: cmd.replicationType,
    factor: cmd.replicationFactor,
    leaderId: cmd.leaderId ?? '',
    creationTimestamp: cmd.timestamp,
  });
  state.putPipeline(pipeline);
  return pipeline;
}

/** Which pipeline states each command accepts, and where it takes them (self = idempotent repeat). */
const PIPELINE_TRANSITIONS: Readonly<Record<PipelineStateCommand['type'], Readonly<Partial<Record<PipelineState, PipelineState>>>>> = {
  openPipeline: { ALLOCATED: 'OPEN', OPEN: 'OPEN' },
  closePipeline: { ALLOCATED: 'CLOSED', OPEN: 'CLOSED', DORMANT: 'CLOSED', CLOSED: 'CLOSED' },
  deactivatePipeline: { OPEN: 'DORMANT', DORMANT: 'DORMANT' },
  activatePipeline: { DORMANT: 'OPEN', OPEN: 'OPEN' },
};

function changePipelineState(state: ScmState, cmd: PipelineStateCommand): PipelineInfo {
  const pipeline = state.getPipeline(cmd.pipelineId);
  if (pipeline === undefined) throw new NotFoundError(`pipeline ${cmd.pipelineId} does not exist`);
  const next = PIPELINE_TRANSITIONS[cmd.type][pipeline.state];
  if (next === undefined) {
    throw new InvalidStateTransitionError(`pipeline ${pipeline.id}: ${cmd.type} is invalid in current state ${pipeline.state}`);
  }
  if (next === pipeline.state) return pipeline;
  if (next === 'CLOSED') {
    // As Ozone does when a pipeline closes, its open containers are finalized (OPEN → CLOSING).
    for (const id of state.openContainerIds(pipeline.id)) updateContainerState(state, id, 'FINALIZE', cmd.timestamp);
  }
  const updated: PipelineInfo = Object.freeze({ ...pipeline, state: next });
  state.putPipeline(updated);
  return updated;
}

function registerDatanode(state: ScmState, cmd: RegisterDatanodeCommand): DatanodeInfo {
  // A datanode that registers again (new address or ports) replaces its record, as in Ozone.
  const datanode: DatanodeInfo = Object.freeze({
    uuid: cmd.uuid,
    hostname: cmd.hostname,
    ipAddress: cmd.ipAddress,
    ports: Object.freeze(cmd.ports.map((p) => Object.freeze({ name: p.name, value: p.value }))),
  });
  state.putDatanode(datanode);
  return datanode;
}

// Pipeline choice for a new container, made by the LEADER when it proposes an allocation (apply only
// checks that the chosen pipeline still fits). Pure and deterministic: among OPEN pipelines of the
// requested replication, the one with the fewest open containers, ties broken by pipeline id.
import { NoPipelineError } from '../errors.js';
import type { PipelineInfo, ReplicationFactor, ReplicationType } from './model.js';

export interface PipelinePlacementView {
  listPipelines(): readonly PipelineInfo[];
  openContainerCount(pipelineId: string): number;
}

export function noOpenPipelineError(type: ReplicationType, factor: ReplicationFactor): NoPipelineError {
  return new NoPipelineError(`no OPEN pipeline matches replication type ${type} and factor ${factor}`);
}

export function choosePipeline(view: PipelinePlacementView, type: ReplicationType, factor: ReplicationFactor): PipelineInfo {
  let best: PipelineInfo | undefined;
  let bestCount = Infinity;
  for (const pipeline of view.listPipelines()) {
    if (pipeline.state !== 'OPEN' || pipeline.type !== type || pipeline.factor !== factor) continue;
    const count = view.openContainerCount(pipeline.id);
    if (best === undefined || count < bestCount || (count === bestCount && pipeline.id < best.id)) {
      best = pipeline;
      bestCount = count;
    }
  }
  if (best === undefined) throw noOpenPipelineError(type, factor);
  return best;
}

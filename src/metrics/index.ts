// Public surface of the observability library, for the node composition in src/server.
export {
  NodeMetrics,
  NODE_ID_LABEL,
  RAFT_ROLES,
  CONTAINER_STATES,
  PIPELINE_STATES,
  DATANODE_STATES,
  SNAPSHOT_FAILURE_REASONS,
  GRPC_CODE_NAMES,
  SERVED_GRPC_CODES,
  GRPC_CALL_TYPES,
  type RaftRole,
  type ContainerState,
  type PipelineState,
  type DatanodeState,
  type GrpcMethod,
  type MetricsWarningHandler,
  type SnapshotFailureReason,
  type SnapshotNotificationDirection,
  type GrpcCodeName,
  type GrpcCallType,
  type RaftIndexes,
  type SnapshotTransferResult,
  type GrpcRequestObservation,
  type NodeMetricsOptions,
} from './node-metrics.js';
export { getProcessRegistry, withProcessLabel } from './process-metrics.js';
export { packageVersion } from './build-info.js';
export { instrumentGrpcService, parseGrpcPath, grpcCodeOf } from './grpc-instrumentation.js';
export {
  startMetricsHttpServer,
  type MetricsHttpServer,
  type MetricsHttpServerOptions,
  type NodeStatus,
  type PeerStatus,
  type Readiness,
} from './http-server.js';
export { assessReadiness, DEFAULT_READINESS_POLICY, type ReadinessPolicy } from './readiness.js';
export { createLogger, resolveLogLevel, LOG_LEVEL_ENV, LOG_LEVELS, type Logger, type LogLevel, type LoggerOptions } from './logger.js';
export {
  RaftEvents,
  SnapshotTransfer,
  type RaftEventsOptions,
  type SnapshotTransferContext,
  type SnapshotTransferKind,
} from './raft-events.js';

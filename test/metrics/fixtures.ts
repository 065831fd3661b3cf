// Shared test helpers: a NodeMetrics filled with representative values of every kind, and
// promtool, the Prometheus project's own linter for the exposition format.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';

export const PROMTOOL = '/usr/bin/promtool';

/** Every metric family the issue requires, by its exposed name. */
export const REQUIRED_METRIC_NAMES = [
  'scm_raft_term',
  'scm_raft_role',
  'scm_raft_last_log_index',
  'scm_raft_commit_index',
  'scm_raft_applied_index',
  'scm_raft_leader_changes_total',
  'scm_raft_elections_total',
  'scm_raft_log_append_seconds',
  'scm_raft_log_fsync_seconds',
  'scm_raft_log_entries_per_fsync',
  'scm_raft_follower_lag_entries',
  'scm_snapshot_notifications_total',
  'scm_snapshot_downloads_total',
  'scm_snapshot_download_bytes_total',
  'scm_snapshot_download_seconds',
  'scm_snapshot_download_failures_total',
  'scm_snapshot_installs_total',
  'scm_snapshot_install_bytes_total',
  'scm_snapshot_install_seconds',
  'scm_snapshot_install_failures_total',
  'scm_containers',
  'scm_container_allocations_total',
  'scm_grpc_server_handled_total',
  'scm_grpc_server_handling_seconds',
  // Health metrics modelled on etcd's (fed by the node and the driver).
  'scm_raft_has_leader',
  'scm_raft_proposals_pending',
  'scm_raft_proposals_failed_total',
  'scm_raft_apply_seconds',
  'scm_raft_peer_last_contact_seconds',
  'scm_raft_peer_send_failures_total',
  'scm_raft_peer_round_trip_seconds',
  'scm_snapshot_checkpoint_creation_seconds',
  'scm_db_size_bytes',
  'scm_raft_log_size_bytes',
  'scm_build_info',
  'scm_pipelines',
  'scm_datanodes',
  'scm_consistency_mismatch',
  'scm_raft_removed',
  'scm_client_refusals_total',
  'scm_http_refusals_total',
] as const;

/** A NodeMetrics whose warnings are collected instead of printed. */
export function metricsWithWarnings(
  nodeId: string,
  peers: readonly string[] = [],
  options: { warningIntervalMs?: number; now?: () => number } = {},
): { metrics: NodeMetrics; warnings: string[] } {
  const warnings: string[] = [];
  const metrics = new NodeMetrics({ nodeId, peers, onWarning: (message) => warnings.push(message), ...options });
  return { metrics, warnings };
}

export function representativeMetrics(nodeId: string, peers: readonly string[]): NodeMetrics {
  const metrics = new NodeMetrics({ nodeId, peers, version: '0.1.0-test', onWarning: (message) => assert.fail(`unexpected metrics warning: ${message}`) });
  metrics.setRole('leader');
  metrics.setTerm(7);
  metrics.setIndexes({ lastLog: 1200, commit: 1190, applied: 1185 });
  metrics.setSnapshotIndex(1000);
  metrics.leaderChanged();
  metrics.electionStarted();
  metrics.observeAppend(0.00042);
  metrics.observeFsync(0.0031, 12);
  metrics.observeFsync(0.012, 64);
  for (const [i, peer] of peers.entries()) metrics.setFollowerLag(peer, 3 + i * 100);
  metrics.snapshotNotification('sent');
  metrics.downloadCompleted({ bytes: 5 * 1024 * 1024, seconds: 1.5 });
  metrics.downloadFailed('checksum_mismatch');
  metrics.installCompleted({ bytes: 5 * 1024 * 1024, seconds: 0.4 });
  metrics.installFailed('stale_checkpoint');
  metrics.checkpointServed(4096);
  metrics.setContainersByState({ OPEN: 10, CLOSED: 3 });
  metrics.allocation();
  metrics.allocation(2);
  metrics.observeGrpcRequest({ service: 'ScmClientService', method: 'AllocateContainer', type: 'unary', code: 'OK', seconds: 0.004 });
  metrics.observeGrpcRequest({ service: 'InterSCMProtocolService', method: 'download', type: 'server_stream', code: 'UNAVAILABLE', seconds: 0.2 });
  metrics.setHasLeader(true);
  metrics.setProposalsPending(4);
  metrics.proposalFailed();
  metrics.observeApply(0.0008);
  for (const [i, peer] of peers.entries()) {
    metrics.setPeerLastContact(peer, 0.25 + i);
    metrics.observePeerRoundTrip(peer, 0.0004 * (i + 1));
  }
  if (peers[0] !== undefined) metrics.peerSendFailed(peers[0], 2);
  metrics.observeCheckpointCreation(0.35);
  metrics.setDbSize(48 * 1024 * 1024);
  metrics.setRaftLogSize(96 * 1024 * 1024);
  metrics.setPipelinesByState({ OPEN: 2, CLOSED: 1 });
  metrics.setDatanodesByState({ IN_SERVICE: 3, DECOMMISSIONING: 1 });
  metrics.setConsistencyMismatch(false);
  return metrics;
}

/** Runs `promtool check metrics` on an exposition; returns its exit status and everything it printed. */
export function promtoolCheck(exposition: string): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

/** Sample lines (not comments) of one metric family, e.g. `scm_raft_term{scm_node_id="n1"} 7`. */
export function samplesOf(exposition: string, name: string): string[] {
  return exposition
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

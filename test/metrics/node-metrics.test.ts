import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { promtoolCheck, representativeMetrics, REQUIRED_METRIC_NAMES, samplesOf } from './fixtures.js';

test('a populated node passes promtool check metrics without any complaint', async () => {
  const exposition = await representativeMetrics('scm1', ['scm2', 'scm3']).render();
  const { status, output } = promtoolCheck(exposition);
  assert.equal(output, '', `promtool complained:\n${output}`);
  assert.equal(status, 0);
});

test('promtool in this harness does reject a badly named counter', () => {
  // Guards the test above: if promtool were silent on everything, that test would prove nothing.
  const bad = '# HELP scm_bad A counter without _total.\n# TYPE scm_bad counter\nscm_bad 1\n';
  const { status, output } = promtoolCheck(bad);
  assert.notEqual(status, 0);
  assert.match(output, /_total/);
});

test('every required metric family is exposed with HELP and TYPE', async () => {
  const exposition = await representativeMetrics('scm1', ['scm2', 'scm3']).render();
  for (const name of REQUIRED_METRIC_NAMES) {
    assert.match(exposition, new RegExp(`^# HELP ${name} `, 'm'), `missing HELP for ${name}`);
    assert.match(exposition, new RegExp(`^# TYPE ${name} `, 'm'), `missing TYPE for ${name}`);
  }
  // Process metrics from the process-wide registry come along.
  assert.match(exposition, /^process_cpu_seconds_total /m);
  assert.match(exposition, /^nodejs_heap_size_used_bytes /m);
});

test('values set through the typed methods appear with the node id label', async () => {
  const exposition = await representativeMetrics('scm1', ['scm2', 'scm3']).render();
  assert.deepEqual(samplesOf(exposition, 'scm_raft_term'), ['scm_raft_term{scm_node_id="scm1"} 7']);
  assert.ok(exposition.includes('scm_raft_role{role="leader",scm_node_id="scm1"} 1'));
  assert.ok(exposition.includes('scm_raft_role{role="follower",scm_node_id="scm1"} 0'));
  assert.ok(exposition.includes('scm_raft_role{role="non-voter",scm_node_id="scm1"} 0'));
  assert.ok(exposition.includes('scm_raft_commit_index{scm_node_id="scm1"} 1190'));
  assert.ok(exposition.includes('scm_raft_applied_index{scm_node_id="scm1"} 1185'));
  assert.ok(exposition.includes('scm_raft_follower_lag_entries{peer="scm3",scm_node_id="scm1"} 103'));
  assert.ok(exposition.includes('scm_raft_log_entries_per_fsync_sum{scm_node_id="scm1"} 76'));
  assert.ok(exposition.includes('scm_raft_log_entries_per_fsync_count{scm_node_id="scm1"} 2'));
  assert.ok(exposition.includes('scm_snapshot_download_bytes_total{scm_node_id="scm1"} 5242880'));
  assert.ok(exposition.includes('scm_snapshot_download_failures_total{reason="checksum_mismatch",scm_node_id="scm1"} 1'));
  assert.ok(exposition.includes('scm_containers{state="OPEN",scm_node_id="scm1"} 10'));
  assert.ok(exposition.includes('scm_containers{state="DELETED",scm_node_id="scm1"} 0'));
  assert.ok(exposition.includes('scm_container_allocations_total{scm_node_id="scm1"} 3'));
  assert.ok(
    exposition.includes(
      'scm_grpc_server_handled_total{grpc_service="InterSCMProtocolService",grpc_method="download",grpc_type="server_stream",grpc_code="UNAVAILABLE",scm_node_id="scm1"} 1',
    ),
  );
});

test('changing role leaves exactly one role at 1', async () => {
  const metrics = new NodeMetrics({ nodeId: 'n1' });
  metrics.setRole('candidate');
  metrics.setRole('follower');
  const active = samplesOf(await metrics.render(), 'scm_raft_role').filter((line) => line.endsWith(' 1'));
  assert.deepEqual(active, ['scm_raft_role{role="follower",scm_node_id="n1"} 1']);
});

test('several nodes in one process: no registration conflict, each output carries only its own id', async () => {
  const nodes = ['a1', 'a2', 'a3'].map((id, i) => {
    const m = new NodeMetrics({ nodeId: id });
    m.setTerm(10 + i);
    return m;
  });
  for (const [i, node] of nodes.entries()) {
    const exposition = await node.render();
    assert.deepEqual(samplesOf(exposition, 'scm_raft_term'), [`scm_raft_term{scm_node_id="a${i + 1}"} ${10 + i}`]);
    const otherIds = [...exposition.matchAll(/scm_node_id="([^"]+)"/g)].map((m) => m[1]).filter((id) => id !== node.nodeId);
    assert.deepEqual(otherIds, []);
    // Process metrics appear once per exposition, not once per node created.
    assert.equal(exposition.match(/^# TYPE process_cpu_seconds_total /gm)?.length, 1);
    assert.equal(promtoolCheck(exposition).status, 0);
  }
});

test('follower lag is only accepted for configured peers, and removed peers disappear', async () => {
  const metrics = new NodeMetrics({ nodeId: 'n1', peers: ['n2', 'n3'] });
  metrics.setFollowerLag('n2', 5);
  metrics.setFollowerLag('n3', 9);
  assert.throws(() => metrics.setFollowerLag('n4', 1), /unknown peer "n4".*n2, n3/);
  metrics.setKnownPeers(['n2', 'n4']);
  metrics.setFollowerLag('n4', 1);
  const lines = samplesOf(await metrics.render(), 'scm_raft_follower_lag_entries');
  assert.deepEqual(lines.sort(), [
    'scm_raft_follower_lag_entries{peer="n2",scm_node_id="n1"} 5',
    'scm_raft_follower_lag_entries{peer="n4",scm_node_id="n1"} 1',
  ]);
  metrics.clearFollowerLag();
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_raft_follower_lag_entries'), []);
  assert.throws(() => metrics.setKnownPeers(['n1']), /must not contain the node itself/);
});

test('bad input is rejected with an error naming what was wrong', () => {
  assert.throws(() => new NodeMetrics({ nodeId: '' }), /invalid node id ""/);
  assert.throws(() => new NodeMetrics({ nodeId: 'a b' }), /invalid node id "a b"/);
  const m = new NodeMetrics({ nodeId: 'v1' });
  assert.throws(() => m.setRole('boss' as never), /unknown Raft role "boss"/);
  assert.throws(() => m.setTerm(-1), /term must be a non-negative integer, got -1/);
  assert.throws(() => m.setTerm(1.5), /term must be a non-negative integer/);
  assert.throws(() => m.setIndexes({ lastLog: 10, commit: 4, applied: 5 }), /applied index 5 is above commit index 4/);
  assert.throws(() => m.observeFsync(Number.NaN, 1), /fsync duration/);
  assert.throws(() => m.observeAppend(-0.1), /append duration/);
  assert.throws(() => m.setContainersByState({ OPENED: 1 } as never), /unknown container state "OPENED"/);
  assert.throws(() => m.setContainersByState(new Map([['OPEN', -2]])), /container count for OPEN/);
  assert.throws(() => m.downloadFailed('cosmic_rays' as never), /unknown snapshot failure reason "cosmic_rays"/);
  assert.throws(() => m.installCompleted({ bytes: -1, seconds: 1 }), /install bytes/);
  assert.throws(() => m.snapshotNotification('sideways' as never), /direction "sideways"/);
  assert.throws(
    () => m.observeGrpcRequest({ service: 's', method: 'm', type: 'unary', code: 'FINE' as never, seconds: 0 }),
    /unknown gRPC status code "FINE"/,
  );
  // A rejected update leaves the previous value in place.
  assert.deepEqual(m.indexes, { lastLog: 0, commit: 0, applied: 0 });
});

test('setContainersByState accepts a Map and resets states that are no longer present', async () => {
  const m = new NodeMetrics({ nodeId: 'c1' });
  m.setContainersByState(new Map([['OPEN', 4], ['CLOSING', 1]]));
  m.setContainersByState(new Map([['CLOSED', 5]]));
  const lines = samplesOf(await m.render(), 'scm_containers');
  assert.ok(lines.includes('scm_containers{state="OPEN",scm_node_id="c1"} 0'));
  assert.ok(lines.includes('scm_containers{state="CLOSING",scm_node_id="c1"} 0'));
  assert.ok(lines.includes('scm_containers{state="CLOSED",scm_node_id="c1"} 5'));
  assert.equal(lines.length, 7);
});

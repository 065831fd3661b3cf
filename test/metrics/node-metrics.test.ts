import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONTAINER_STATES,
  DATANODE_STATES,
  NodeMetrics,
  PIPELINE_STATES,
  SNAPSHOT_FAILURE_REASONS,
} from '../../src/metrics/node-metrics.js';
import { LIFE_CYCLE_STATES, PIPELINE_STATES as MODEL_PIPELINE_STATES } from '../../src/statemachine/model.js';
import { metricsWithWarnings, promtoolCheck, representativeMetrics, REQUIRED_METRIC_NAMES, samplesOf } from './fixtures.js';

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
  // Process metrics from the process-wide registry come along, labelled with the node like the rest.
  assert.match(exposition, /^process_cpu_seconds_total\{scm_node_id="scm1"\} /m);
  assert.match(exposition, /^nodejs_heap_size_used_bytes\{scm_node_id="scm1"\} /m);
  assert.match(exposition, /^nodejs_heap_space_size_used_bytes\{scm_node_id="scm1",space="[a-z_]+"\} /m);
});

test('every sample of a node, process metrics included, carries its scm_node_id', async () => {
  const exposition = await representativeMetrics('scm1', ['scm2', 'scm3']).render();
  const samples = exposition.split('\n').filter((line) => line.length > 0 && !line.startsWith('#'));
  assert.ok(samples.length > 100);
  const unlabelled = samples.filter((line) => !/^[a-zA-Z_:][a-zA-Z0-9_:]*\{(?:[^}]*,)?scm_node_id="scm1"/.test(line));
  assert.deepEqual(unlabelled, []);
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

test('the health metrics set through their methods appear in the registry output', async () => {
  const exposition = await representativeMetrics('scm1', ['scm2', 'scm3']).render();
  const expected = [
    'scm_raft_has_leader{scm_node_id="scm1"} 1',
    'scm_raft_proposals_pending{scm_node_id="scm1"} 4',
    'scm_raft_proposals_failed_total{scm_node_id="scm1"} 1',
    'scm_raft_apply_seconds_count{scm_node_id="scm1"} 1',
    'scm_raft_apply_seconds_bucket{le="0.0008",scm_node_id="scm1"} 1',
    'scm_raft_apply_seconds_bucket{le="0.0004",scm_node_id="scm1"} 0',
    'scm_raft_peer_last_contact_seconds{peer="scm2",scm_node_id="scm1"} 0.25',
    'scm_raft_peer_last_contact_seconds{peer="scm3",scm_node_id="scm1"} 1.25',
    'scm_raft_peer_send_failures_total{peer="scm2",scm_node_id="scm1"} 2',
    'scm_raft_peer_send_failures_total{peer="scm3",scm_node_id="scm1"} 0',
    'scm_raft_peer_round_trip_seconds_count{scm_node_id="scm1",peer="scm3"} 1',
    'scm_raft_peer_round_trip_seconds_sum{scm_node_id="scm1",peer="scm3"} 0.0008',
    'scm_snapshot_checkpoint_creation_seconds_count{scm_node_id="scm1"} 1',
    'scm_db_size_bytes{scm_node_id="scm1"} 50331648',
    'scm_raft_log_size_bytes{scm_node_id="scm1"} 100663296',
    'scm_build_info{version="0.1.0-test",scm_node_id="scm1"} 1',
    'scm_pipelines{state="OPEN",scm_node_id="scm1"} 2',
    'scm_pipelines{state="DORMANT",scm_node_id="scm1"} 0',
    'scm_datanodes{state="IN_SERVICE",scm_node_id="scm1"} 3',
    'scm_datanodes{state="DECOMMISSIONING",scm_node_id="scm1"} 1',
    'scm_datanodes{state="DECOMMISSIONED",scm_node_id="scm1"} 0',
    'scm_consistency_mismatch{scm_node_id="scm1"} 0',
    'scm_raft_removed{scm_node_id="scm1"} 0',
  ];
  const lines = new Set(exposition.split('\n'));
  for (const line of expected) assert.ok(lines.has(line), `missing ${line}`);

  const m = new NodeMetrics({ nodeId: 'h1', peers: ['h2'] });
  m.setConsistencyMismatch(true);
  m.setHasLeader(false);
  m.setRemovedFromGroup(true);
  const after = await m.render();
  assert.deepEqual(samplesOf(after, 'scm_consistency_mismatch'), ['scm_consistency_mismatch{scm_node_id="h1"} 1']);
  assert.deepEqual(samplesOf(after, 'scm_raft_has_leader'), ['scm_raft_has_leader{scm_node_id="h1"} 0']);
  assert.deepEqual(samplesOf(after, 'scm_raft_removed'), ['scm_raft_removed{scm_node_id="h1"} 1']);
});

test('scm_build_info carries package.json\'s version unless told otherwise', async () => {
  const { version } = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))) as { version: string };
  const exposition = await new NodeMetrics({ nodeId: 'b1' }).render();
  assert.deepEqual(samplesOf(exposition, 'scm_build_info'), [`scm_build_info{version="${version}",scm_node_id="b1"} 1`]);
});

test('failure counters exist at 0 from the first scrape, for every reason and every known peer', async () => {
  const metrics = new NodeMetrics({ nodeId: 'z1', peers: ['z2', 'z3'] });
  const exposition = await metrics.render();
  for (const family of ['scm_snapshot_download_failures_total', 'scm_snapshot_install_failures_total']) {
    assert.deepEqual(
      samplesOf(exposition, family),
      SNAPSHOT_FAILURE_REASONS.map((reason) => `${family}{reason="${reason}",scm_node_id="z1"} 0`),
    );
    // A leader too busy to serve has a series of its own, apart from a network failure.
    assert.ok(samplesOf(exposition, family).includes(`${family}{reason="busy",scm_node_id="z1"} 0`), `${family} has reason="busy"`);
  }
  assert.deepEqual(samplesOf(exposition, 'scm_raft_peer_send_failures_total'), [
    'scm_raft_peer_send_failures_total{peer="z2",scm_node_id="z1"} 0',
    'scm_raft_peer_send_failures_total{peer="z3",scm_node_id="z1"} 0',
  ]);
  assert.deepEqual(samplesOf(exposition, 'scm_raft_proposals_failed_total'), ['scm_raft_proposals_failed_total{scm_node_id="z1"} 0']);
  assert.deepEqual(samplesOf(exposition, 'scm_client_refusals_total'), [
    'scm_client_refusals_total{reason="request_buffer",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="connection_share",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="read_timeout",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="write_timeout",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="connection_limit",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="address_share",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="connection_evicted",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="handshake_timeout",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="protocol_error",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="list_limit",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="handler_count",scm_node_id="z1"} 0',
  ]);
  assert.deepEqual(samplesOf(exposition, 'scm_client_connections'), ['scm_client_connections{scm_node_id="z1"} 0']);
  metrics.setClientConnections(7);
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_client_connections'), ['scm_client_connections{scm_node_id="z1"} 7']);
  metrics.clientCallRefused('request_buffer');
  metrics.clientCallRefused('read_timeout');
  metrics.clientCallRefused('connection_limit');
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_client_refusals_total'), [
    'scm_client_refusals_total{reason="request_buffer",scm_node_id="z1"} 1',
    'scm_client_refusals_total{reason="connection_share",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="read_timeout",scm_node_id="z1"} 1',
    'scm_client_refusals_total{reason="write_timeout",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="connection_limit",scm_node_id="z1"} 1',
    'scm_client_refusals_total{reason="address_share",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="connection_evicted",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="handshake_timeout",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="protocol_error",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="list_limit",scm_node_id="z1"} 0',
    'scm_client_refusals_total{reason="handler_count",scm_node_id="z1"} 0',
  ]);
  assert.deepEqual(samplesOf(exposition, 'scm_raft_leader_changes_total'), ['scm_raft_leader_changes_total{scm_node_id="z1"} 0']);
  assert.deepEqual(samplesOf(exposition, 'scm_raft_log_entries_dropped_total'), [
    'scm_raft_log_entries_dropped_total{reason="zeroed",scm_node_id="z1"} 0',
    'scm_raft_log_entries_dropped_total{reason="corruption-policy",scm_node_id="z1"} 0',
  ]);
  metrics.logEntriesDroppedAtStart('zeroed', 3);
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_raft_log_entries_dropped_total')[0], 'scm_raft_log_entries_dropped_total{reason="zeroed",scm_node_id="z1"} 3');
  // A peer added later starts at 0 too, and a count survives a membership change that keeps the peer.
  metrics.peerSendFailed('z2');
  metrics.setKnownPeers(['z2', 'z3', 'z4']);
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_raft_peer_send_failures_total'), [
    'scm_raft_peer_send_failures_total{peer="z2",scm_node_id="z1"} 1',
    'scm_raft_peer_send_failures_total{peer="z3",scm_node_id="z1"} 0',
    'scm_raft_peer_send_failures_total{peer="z4",scm_node_id="z1"} 0',
  ]);
});

test('peer port connection series exist at 0 per port and reason; a port or reason outside the lists is not recorded, with a warning', async () => {
  const { metrics, warnings } = metricsWithWarnings('z1');
  const exposition = await metrics.render();
  assert.deepEqual(samplesOf(exposition, 'scm_peer_connection_refusals_total'), [
    'scm_peer_connection_refusals_total{port="ratis",reason="connection_limit",scm_node_id="z1"} 0',
    'scm_peer_connection_refusals_total{port="ratis",reason="address_share",scm_node_id="z1"} 0',
    'scm_peer_connection_refusals_total{port="grpc",reason="connection_limit",scm_node_id="z1"} 0',
    'scm_peer_connection_refusals_total{port="grpc",reason="address_share",scm_node_id="z1"} 0',
  ]);
  assert.deepEqual(samplesOf(exposition, 'scm_peer_connections'), ['scm_peer_connections{port="ratis",scm_node_id="z1"} 0', 'scm_peer_connections{port="grpc",scm_node_id="z1"} 0']);
  metrics.setPeerConnections('grpc', 3);
  metrics.peerConnectionRefused('ratis', 'address_share');
  metrics.peerConnectionRefused('client' as 'ratis', 'address_share');
  metrics.setPeerConnections('raft' as 'ratis', 1);
  const after = await metrics.render();
  assert.deepEqual(samplesOf(after, 'scm_peer_connections'), ['scm_peer_connections{port="ratis",scm_node_id="z1"} 0', 'scm_peer_connections{port="grpc",scm_node_id="z1"} 3']);
  assert.deepEqual(
    samplesOf(after, 'scm_peer_connection_refusals_total').filter((l) => !l.endsWith(' 0')),
    ['scm_peer_connection_refusals_total{port="ratis",reason="address_share",scm_node_id="z1"} 1'],
  );
  assert.deepEqual(warnings, ['metrics of z1: unknown peer connection refusal {"port":"client","reason":"address_share"} not recorded', 'metrics of z1: unknown peer port "raft" not recorded']);
});

test('applied above commit (a snapshot install mid-sample) does not throw: commit is clamped and a warning says so', async () => {
  const { metrics, warnings } = metricsWithWarnings('s1');
  // The numbers of the incident: a 1 s gauge timer sampled the indexes during an install.
  assert.doesNotThrow(() => metrics.setIndexes({ lastLog: 5967, commit: 5967, applied: 6176 }));
  assert.deepEqual(warnings, ['metrics of s1: applied index 6176 is above commit index 5967: reporting commit index 6176']);
  const exposition = await metrics.render();
  assert.deepEqual(samplesOf(exposition, 'scm_raft_applied_index'), ['scm_raft_applied_index{scm_node_id="s1"} 6176']);
  assert.deepEqual(samplesOf(exposition, 'scm_raft_commit_index'), ['scm_raft_commit_index{scm_node_id="s1"} 6176']);
  assert.deepEqual(samplesOf(exposition, 'scm_raft_last_log_index'), ['scm_raft_last_log_index{scm_node_id="s1"} 5967']);
  assert.deepEqual(metrics.indexes, { lastLog: 5967, commit: 6176, applied: 6176 });
  // Once the commit index catches up, the values are taken as they are again.
  metrics.setIndexes({ lastLog: 6200, commit: 6190, applied: 6180 });
  assert.deepEqual(metrics.indexes, { lastLog: 6200, commit: 6190, applied: 6180 });
  assert.equal(warnings.length, 1);
});

test('without a warning handler, a clamped sample goes to process warnings, still without a throw', async () => {
  const emitted: string[] = [];
  const listener = (warning: Error): void => {
    if (warning.name === 'ScmMetricsWarning') emitted.push(warning.message);
  };
  process.on('warning', listener);
  try {
    const metrics = new NodeMetrics({ nodeId: 'p1' });
    metrics.setIndexes({ lastLog: 3, commit: 2, applied: 3 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(emitted, ['metrics of p1: applied index 3 is above commit index 2: reporting commit index 3']);
  } finally {
    process.off('warning', listener);
  }
});

test('warnings are limited to one per kind and interval, then report how many were held back', () => {
  let now = 0;
  const { metrics, warnings } = metricsWithWarnings('w1', [], { warningIntervalMs: 1000, now: () => now });
  for (let i = 0; i < 5; i++) metrics.setIndexes({ lastLog: 10, commit: 4, applied: 5 + i });
  metrics.setTerm(-1); // another kind: reported at once
  now = 999;
  metrics.setIndexes({ lastLog: 10, commit: 4, applied: 20 });
  now = 1000;
  metrics.setIndexes({ lastLog: 10, commit: 4, applied: 30 });
  assert.deepEqual(warnings, [
    'metrics of w1: applied index 5 is above commit index 4: reporting commit index 5',
    'metrics of w1: term must be a non-negative integer, got -1; not recorded',
    'metrics of w1: applied index 30 is above commit index 4: reporting commit index 30 (5 similar warnings since the last one)',
  ]);
  // A throwing handler does not make the update throw.
  const angry = new NodeMetrics({ nodeId: 'w2', onWarning: () => { throw new Error('handler bug'); } });
  assert.doesNotThrow(() => angry.setTerm(-5));
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

test('peer series are only recorded for configured peers, and removed peers disappear', async () => {
  const { metrics, warnings } = metricsWithWarnings('n1', ['n2', 'n3']);
  metrics.setFollowerLag('n2', 5);
  metrics.setFollowerLag('n3', 9);
  metrics.setPeerLastContact('n3', 1.5);
  metrics.observePeerRoundTrip('n3', 0.001);
  metrics.setFollowerLag('n4', 1);
  metrics.peerSendFailed('n4');
  assert.deepEqual(warnings, [
    'metrics of n1: follower lag for unknown peer "n4" not recorded: configured peers are [n2, n3]',
    'metrics of n1: send failure for unknown peer "n4" not recorded: configured peers are [n2, n3]',
  ]);
  metrics.setKnownPeers(['n2', 'n4']);
  metrics.setFollowerLag('n4', 1);
  const text = await metrics.render();
  assert.deepEqual(samplesOf(text, 'scm_raft_follower_lag_entries').sort(), [
    'scm_raft_follower_lag_entries{peer="n2",scm_node_id="n1"} 5',
    'scm_raft_follower_lag_entries{peer="n4",scm_node_id="n1"} 1',
  ]);
  // Everything about n3 is gone.
  assert.ok(!text.includes('peer="n3"'), 'a removed peer keeps series');
  metrics.clearFollowerLag();
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_raft_follower_lag_entries'), []);
  metrics.setKnownPeers(['n1', 'n2', 'bad id']);
  assert.deepEqual(warnings.slice(2), [
    'metrics of n1: peer list of n1 contains the node itself; skipped',
    'metrics of n1: invalid peer id "bad id" skipped',
  ]);
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_raft_peer_send_failures_total'), ['scm_raft_peer_send_failures_total{peer="n2",scm_node_id="n1"} 0']);
});

test('bad input is dropped with a warning naming what was wrong, never thrown', async () => {
  assert.throws(() => new NodeMetrics({ nodeId: '' }), /invalid node id ""/);
  assert.throws(() => new NodeMetrics({ nodeId: 'a b' }), /invalid node id "a b"/);
  const { metrics: m, warnings } = metricsWithWarnings('v1', [], { warningIntervalMs: 0 });
  m.setTerm(3);
  const calls: [() => void, RegExp][] = [
    [() => m.setRole('boss' as never), /unknown Raft role "boss"/],
    [() => m.setTerm(-1), /term must be a non-negative integer, got -1/],
    [() => m.setTerm(1.5), /term must be a non-negative integer, got 1\.5/],
    [() => m.setIndexes({ lastLog: -1, commit: 0, applied: 0 }), /last log index must be a non-negative integer/],
    [() => m.observeFsync(Number.NaN, 1), /fsync duration/],
    [() => m.observeAppend(-0.1), /append duration/],
    [() => m.observeApply(Number.POSITIVE_INFINITY), /apply duration/],
    [() => m.setContainersByState({ OPENED: 1 } as never), /unknown container state "OPENED"/],
    [() => m.setContainersByState(new Map([['OPEN', -2]])), /container count for OPEN/],
    [() => m.setPipelinesByState({ BROKEN: 1 } as never), /unknown pipeline state "BROKEN"/],
    [() => m.setDatanodesByState({ ZOMBIE: 1 } as never), /unknown datanode state "ZOMBIE"/],
    [() => m.downloadFailed('cosmic_rays' as never), /unknown snapshot failure reason "cosmic_rays" counted as "other"/],
    [() => m.installCompleted({ bytes: -1, seconds: 1 }), /install bytes/],
    [() => m.snapshotNotification('sideways' as never), /direction "sideways"/],
    [() => m.setDbSize(-3), /scm\.db size/],
    [() => m.setRaftLogSize(0.5), /Raft log size/],
    [() => m.setProposalsPending(-1), /pending proposals/],
    [() => m.proposalFailed(-1), /failed proposals/],
    [() => m.observeCheckpointCreation(-1), /checkpoint creation/],
    [() => m.logEntriesDroppedAtStart('gremlins' as never, 1), /unknown log drop \{"reason":"gremlins","count":1\}/],
    [() => m.logEntriesDroppedAtStart('zeroed', -1), /unknown log drop \{"reason":"zeroed","count":-1\}/],
    [() => m.observeGrpcRequest({ service: 's', method: 'm', type: 'unary', code: 'FINE' as never, seconds: 0 }), /unknown gRPC status code "FINE"/],
    [() => m.observeGrpcRequest({ service: '', method: 'm', type: 'unary', code: 'OK', seconds: 0 }), /needs a service and a method/],
    [() => m.initGrpcMethod({ service: 's', method: 'm', type: 'sideways' as never }), /unknown gRPC call type "sideways"/],
  ];
  for (const [call, message] of calls) {
    const before = warnings.length;
    assert.doesNotThrow(call);
    assert.equal(warnings.length, before + 1, `no warning for ${String(message)}`);
    assert.match(warnings.at(-1) ?? '', message);
  }
  // Rejected updates leave the previous values in place, and the unknown reason still counts.
  assert.deepEqual(m.indexes, { lastLog: 0, commit: 0, applied: 0 });
  const text = await m.render();
  assert.deepEqual(samplesOf(text, 'scm_raft_term'), ['scm_raft_term{scm_node_id="v1"} 3']);
  assert.ok(text.includes('scm_snapshot_download_failures_total{reason="other",scm_node_id="v1"} 1'));
  assert.deepEqual(samplesOf(text, 'scm_db_size_bytes'), ['scm_db_size_bytes{scm_node_id="v1"} 0']);
  assert.equal(promtoolCheck(text).status, 0);
});

test('the state label values match the state machine\'s enums', () => {
  assert.deepEqual([...CONTAINER_STATES], [...LIFE_CYCLE_STATES]);
  assert.deepEqual([...PIPELINE_STATES], [...MODEL_PIPELINE_STATES]);
  assert.deepEqual([...DATANODE_STATES], ['IN_SERVICE', 'ENTERING_MAINTENANCE', 'IN_MAINTENANCE', 'DECOMMISSIONING', 'DECOMMISSIONED']);
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

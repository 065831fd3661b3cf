import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, resolveLogLevel } from '../../src/metrics/logger.js';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { RaftEvents } from '../../src/metrics/raft-events.js';
import { samplesOf } from './fixtures.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('createLogger writes JSON lines carrying the node id, level name and time', () => {
  const out = capture();
  const log = createLogger({ nodeId: 'scm2', destination: out.stream, env: {} });
  log.info({ term: 3 }, 'hello');
  log.debug('hidden at the default info level');
  const lines = out.lines();
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line?.nodeId, 'scm2');
  assert.equal(line?.level, 'info');
  assert.equal(line?.msg, 'hello');
  assert.equal(line?.term, 3);
  assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT/);
});

test('an error is logged with its own message once, not followed by its causes\' again; the stack keeps them', () => {
  const out = capture();
  const log = createLogger({ nodeId: 'scm1', destination: out.stream, env: {} });
  const root = new Error('term 2 began');
  const aborted = new Error(`download aborted: ${root.message}`, { cause: root });
  log.error({ err: new Error(`install failed: ${aborted.message}`, { cause: aborted }) }, 'snapshot install failed');
  const err = out.lines()[0]?.['err'] as { message: string; stack: string; type: string };
  assert.equal(err.message, 'install failed: download aborted: term 2 began');
  assert.equal(err.type, 'Error');
  assert.match(err.stack, /caused by: Error: download aborted: term 2 began/);
});

test('log level: option over SCM_LOG_LEVEL over info, unknown names rejected', () => {
  assert.equal(resolveLogLevel(undefined, {}), 'info');
  assert.equal(resolveLogLevel(undefined, { SCM_LOG_LEVEL: 'DEBUG' }), 'debug');
  assert.equal(resolveLogLevel('warn', { SCM_LOG_LEVEL: 'debug' }), 'warn');
  assert.throws(() => resolveLogLevel(undefined, { SCM_LOG_LEVEL: 'loud' }), /invalid SCM_LOG_LEVEL "loud": expected one of fatal, error/);
  assert.throws(() => createLogger({ nodeId: '', env: {} }), /non-empty nodeId/);
  const out = capture();
  const log = createLogger({ nodeId: 'n', destination: out.stream, env: { SCM_LOG_LEVEL: 'debug' } });
  log.debug('visible');
  assert.equal(out.lines().length, 1);
});

test('Raft events land in metrics and in info logs with an event field', async () => {
  const out = capture();
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: ['scm2'] });
  const events = new RaftEvents(metrics, createLogger({ nodeId: 'scm1', destination: out.stream, env: {} }));
  events.electionStarted(5);
  events.roleChanged('leader', 5);
  events.leaderChanged({ term: 5, leaderId: 'scm1', previousLeaderId: null });
  events.membershipChanged({ index: 40, voters: ['scm1', 'scm2'], nonVoters: ['scm3'], previousVoters: ['scm1', 'scm2'], previousNonVoters: [] });
  events.membershipChanged({ index: 41, voters: ['scm1', 'scm2', 'scm3'], nonVoters: [], previousVoters: ['scm1', 'scm2'], previousNonVoters: ['scm3'] });
  metrics.setFollowerLag('scm3', 12); // accepted now that scm3 is a member
  // Not a change: no count, no log line, no throw.
  events.leaderChanged({ term: 5, leaderId: 'scm1', previousLeaderId: 'scm1' });

  const lines = out.lines();
  assert.deepEqual(
    lines.map((l) => l.event),
    ['election_started', 'role_changed', 'leader_changed', 'membership_changed', 'membership_changed'],
  );
  assert.ok(lines.every((l) => l.level === 'info' && l.nodeId === 'scm1'));
  assert.deepEqual(lines[3]?.added, ['scm3']);
  assert.deepEqual([lines[4]?.added, lines[4]?.promoted], [[], ['scm3']]);
  assert.match(String(lines[4]?.msg), /promoted scm3 to voter/);
  const text = await metrics.render();
  assert.ok(text.includes('scm_raft_elections_total{scm_node_id="scm1"} 1'));
  assert.ok(text.includes('scm_raft_leader_changes_total{scm_node_id="scm1"} 1'));
  assert.ok(text.includes('scm_raft_role{role="leader",scm_node_id="scm1"} 1'));
  assert.ok(text.includes('scm_raft_term{scm_node_id="scm1"} 5'));
});

test('snapshot transfers log start, throttled progress and done with bytes and rate, and count in metrics', async () => {
  const out = capture();
  const metrics = new NodeMetrics({ nodeId: 'scm3' });
  let clock = 1000;
  const events = new RaftEvents(metrics, createLogger({ nodeId: 'scm3', destination: out.stream, env: {} }), {
    progressEveryBytes: 1000,
    now: () => clock,
  });
  events.snapshotNotification('received', { peer: 'scm1', term: 2, index: 500 });
  const download = events.snapshotTransfer('download', { peer: 'scm1', term: 2, index: 500 });
  for (const total of [400, 900, 1200, 1500, 2100, 4000]) {
    clock += 500;
    download.progress(total);
  }
  download.done(4000);
  // Misuse is a warning, never a throw: the node calling this must not fail because of it.
  download.progress(5000);
  download.done(5000);

  const failing = events.snapshotTransfer('install', { term: 2, index: 500 });
  failing.progress(-5);
  failing.failed('checksum_mismatch', new Error('crc differs'));

  const all = out.lines();
  const warnings = all.filter((l) => l.event === 'metrics_warning');
  assert.deepEqual(
    warnings.map((l) => l.msg),
    [
      'snapshot download already finished: progress ignored',
      'snapshot download already finished: done ignored',
      'snapshot install progress: byte total -5 is not an integer at or above 0; ignored',
    ],
  );
  assert.ok(warnings.every((l) => l.level === 'warn'));
  const lines = all.filter((l) => l.event !== 'metrics_warning');
  assert.deepEqual(
    lines.map((l) => l.event),
    [
      'snapshot_notification',
      'snapshot_download_started',
      'snapshot_download_progress', // crossed 1000 at 1200
      'snapshot_download_progress', // crossed 2000 at 2100
      'snapshot_download_progress', // crossed 3000 (and 4000) at 4000
      'snapshot_download_done',
      'snapshot_install_started',
      'snapshot_install_failed',
    ],
  );
  const done = lines[5];
  assert.equal(done?.bytes, 4000);
  assert.equal(done?.seconds, 3);
  assert.equal(done?.bytesPerSecond, 1333);
  assert.equal(done?.peer, 'scm1');
  assert.equal(lines[7]?.level, 'warn');
  assert.equal(lines[7]?.reason, 'checksum_mismatch');

  const text = await metrics.render();
  assert.deepEqual(samplesOf(text, 'scm_snapshot_download_bytes_total'), ['scm_snapshot_download_bytes_total{scm_node_id="scm3"} 4000']);
  assert.deepEqual(samplesOf(text, 'scm_snapshot_downloads_total'), ['scm_snapshot_downloads_total{scm_node_id="scm3"} 1']);
  assert.ok(text.includes('scm_snapshot_download_seconds_sum{scm_node_id="scm3"} 3'));
  assert.ok(text.includes('scm_snapshot_install_failures_total{reason="checksum_mismatch",scm_node_id="scm3"} 1'));
  assert.ok(text.includes('scm_snapshot_notifications_total{direction="received",scm_node_id="scm3"} 1'));
});

test('leader changes count a different leader only; has_leader follows what the node knows', async () => {
  const out = capture();
  const metrics = new NodeMetrics({ nodeId: 'scm2', peers: ['scm1', 'scm3'] });
  const events = new RaftEvents(metrics, createLogger({ nodeId: 'scm2', destination: out.stream, env: {} }));
  const changes = async (): Promise<string[]> => {
    const text = await metrics.render();
    return [...samplesOf(text, 'scm_raft_leader_changes_total'), ...samplesOf(text, 'scm_raft_has_leader')];
  };
  assert.deepEqual(await changes(), ['scm_raft_leader_changes_total{scm_node_id="scm2"} 0', 'scm_raft_has_leader{scm_node_id="scm2"} 0']);

  // The first leader seen counts.
  events.leaderChanged({ term: 1, leaderId: 'scm1', previousLeaderId: null });
  assert.deepEqual(await changes(), ['scm_raft_leader_changes_total{scm_node_id="scm2"} 1', 'scm_raft_has_leader{scm_node_id="scm2"} 1']);

  // A transfer scm1 -> (no leader) -> scm3 is one change, not two.
  events.leaderChanged({ term: 2, leaderId: null, previousLeaderId: 'scm1' });
  assert.deepEqual(await changes(), ['scm_raft_leader_changes_total{scm_node_id="scm2"} 1', 'scm_raft_has_leader{scm_node_id="scm2"} 0']);
  events.leaderChanged({ term: 2, leaderId: 'scm3', previousLeaderId: null });
  assert.deepEqual(await changes(), ['scm_raft_leader_changes_total{scm_node_id="scm2"} 2', 'scm_raft_has_leader{scm_node_id="scm2"} 1']);

  // Losing the leader and finding the same one again is no change.
  events.leaderChanged({ term: 3, leaderId: null, previousLeaderId: 'scm3' });
  events.leaderChanged({ term: 3, leaderId: 'scm3', previousLeaderId: null });
  // A direct change (no term without a leader in between) counts once.
  events.leaderChanged({ term: 4, leaderId: 'scm2', previousLeaderId: 'scm3' });
  assert.deepEqual(await changes(), ['scm_raft_leader_changes_total{scm_node_id="scm2"} 3', 'scm_raft_has_leader{scm_node_id="scm2"} 1']);

  // Every call with a change is still logged, the lost leader included.
  assert.deepEqual(
    out.lines().map((l) => l.msg),
    [
      'leader is scm1 in term 1',
      'leader scm1 lost in term 2',
      'leader is scm3 in term 2',
      'leader scm3 lost in term 3',
      'leader is scm3 in term 3',
      'leader is scm2 in term 4',
    ],
  );
});

test('a role change drops the per-peer last-contact series: whom a node hears from depends on its role', async () => {
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: ['scm2', 'scm3'] });
  const events = new RaftEvents(metrics, createLogger({ nodeId: 'scm1', destination: capture().stream, env: {} }));
  events.roleChanged('leader', 3);
  metrics.setPeerLastContact('scm2', 0.2);
  metrics.setPeerLastContact('scm3', 0.4);
  assert.equal(samplesOf(await metrics.render(), 'scm_raft_peer_last_contact_seconds').length, 2);
  events.roleChanged('follower', 4);
  assert.deepEqual(samplesOf(await metrics.render(), 'scm_raft_peer_last_contact_seconds'), []);
});

// The benchmark harness's parsing and arithmetic (bench/lib/), without timing anything: flags,
// /proc and Prometheus text, a load row from two samples, percentiles, failover gaps, start-up
// phases from node logs, the snapshot benchmark's output, the Markdown report, and /proc smaps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchArgs, UsageError, type BenchOptions } from '../../bench/lib/args.js';
import { parseMachineCpu, parseProcStat, parseProcStatus } from '../../bench/lib/proc.js';
import { parsePromText, sumOf } from '../../bench/lib/prom.js';
import { anonByMapping } from '../../bench/lib/smaps.js';
import { loadRow, readMetrics, type MemberSample } from '../../bench/lib/members.js';
import { gapAround, longestGapWithin, percentile, summarize } from '../../bench/lib/stats.js';
import { logTime, startupPhases } from '../../bench/lib/node-log.js';
import { parseSnapshotOutput } from '../../bench/parts/snapshot.js';
import { renderLoadComparison, renderMarkdown, type BenchResults } from '../../bench/lib/report.js';
import type { LoadResult } from '../../bench/loadgen.js';

test('flags: defaults, lists, and clear errors', () => {
  const d = parseBenchArgs([]);
  assert.notEqual(d, 'help');
  if (d === 'help') return;
  assert.deepEqual(d.parts, ['load', 'failover', 'restart', 'snapshot']);
  assert.deepEqual(d.callers, [1, 16, 64, 256]);
  assert.equal(d.seconds, 15);
  assert.equal(d.compareEtcd, false);
  assert.equal(d.failoverRounds, 10);
  assert.equal(d.restartEntries, 1_000_000);
  assert.equal(d.tls, false);
  assert.equal((parseBenchArgs(['--tls']) as BenchOptions).tls, true);
  assert.deepEqual(d.nodeArgs, []);
  assert.deepEqual((parseBenchArgs(['--node-arg=--max-semi-space-size=4', '--node-arg=--expose-gc']) as BenchOptions).nodeArgs, ['--max-semi-space-size=4', '--expose-gc']);
  assert.throws(() => parseBenchArgs(['--node-arg', 'max-semi-space-size=4']), (e: Error) => e instanceof UsageError && /is not a node option/.test(e.message));
  assert.deepEqual(d.nodeEnv, {});
  assert.equal(d.compiled, false);
  assert.equal((parseBenchArgs(['--dist']) as BenchOptions).compiled, true);
  assert.deepEqual((parseBenchArgs(['--node-env', 'MALLOC_ARENA_MAX=2', '--node-env=GLIBC_TUNABLES=glibc.malloc.trim_threshold=1:x=2']) as BenchOptions).nodeEnv, {
    MALLOC_ARENA_MAX: '2',
    GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1:x=2',
  });
  // A configuration key as the Ozone images take it from the environment.
  assert.deepEqual((parseBenchArgs(['--node-env', 'OZONE-SITE.XML_ozone.scm.handler.count.key=64']) as BenchOptions).nodeEnv, {
    'OZONE-SITE.XML_ozone.scm.handler.count.key': '64',
  });
  assert.throws(() => parseBenchArgs(['--node-env', 'MALLOC_ARENA_MAX']), (e: Error) => e instanceof UsageError && /is not NAME=VALUE/.test(e.message));
  assert.throws(() => parseBenchArgs(['--node-env', '=2']), (e: Error) => e instanceof UsageError && /is not NAME=VALUE/.test(e.message));

  const o = parseBenchArgs(['--only', 'snapshot,load', '--compare', 'etcd', '--seconds', '2.5', '--callers', '1, 16', '--no-write']);
  assert.notEqual(o, 'help');
  if (o === 'help') return;
  assert.deepEqual(o.parts, ['load', 'snapshot'], 'parts run in their fixed order');
  assert.equal(o.compareEtcd, true);
  assert.equal(o.seconds, 2.5);
  assert.deepEqual(o.callers, [1, 16]);
  assert.equal(o.noWrite, true);
  assert.deepEqual((parseBenchArgs(['--only', 'load', '--only', 'restart']) as BenchOptions).parts, ['load', 'restart']);
  assert.equal(parseBenchArgs(['-h']), 'help');

  assert.throws(() => parseBenchArgs(['--only', 'lod']), (e: Error) => e instanceof UsageError && /unknown part "lod"/.test(e.message));
  assert.throws(() => parseBenchArgs(['--compare', 'zookeeper']), /only etcd/);
  assert.throws(() => parseBenchArgs(['--callers', '0']), /positive integer/);
  assert.throws(() => parseBenchArgs(['--callers', '1,x']), /positive integer, got "x"/);
  assert.throws(() => parseBenchArgs(['--seconds', '0']), /more than 0/);
  assert.throws(() => parseBenchArgs(['--seconds', 'ten']), /number of seconds/);
  assert.throws(() => parseBenchArgs(['--bogus']), UsageError);
});

test('/proc: stat with a command name holding spaces and parentheses, status memory lines, machine cpu line', () => {
  const stat = '4242 (node (tsx) x) S 1 4242 4242 0 -1 4194560 31544 0 0 0 1234 567 0 0 20 0 11 0 123456 1100000000 50000 18446744073709551615';
  assert.deepEqual(parseProcStat(stat), { utime: 1234, stime: 567 });
  assert.throws(() => parseProcStat('garbage'), /not a \/proc/);

  const status = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   81920 kB\nRssFile:\t   20480 kB\n';
  assert.deepEqual(parseProcStatus(status), { rssBytes: 100 * 1048576, peakRssBytes: 200 * 1048576, anonBytes: 80 * 1048576, fileBytes: 20 * 1048576 });
  assert.equal(parseProcStatus('Name:\tx\n').rssBytes, 0);

  const cpu = parseMachineCpu('cpu  100 5 50 1000 20 1 2 7 0 0\ncpu0 50 2 25 500 10 0 1 3 0 0\n');
  assert.deepEqual(cpu, { busy: 158, total: 1185 });
});

test('Prometheus text: labels with escapes, histograms summed over matching series, comments skipped', () => {
  const text = [
    '# HELP scm_raft_log_entries_per_fsync Entries per fsync.',
    '# TYPE scm_raft_log_entries_per_fsync histogram',
    'scm_raft_log_entries_per_fsync_bucket{le="1",scm_node_id="scm1"} 3',
    'scm_raft_log_entries_per_fsync_sum{scm_node_id="scm1"} 120',
    'scm_raft_log_entries_per_fsync_count{scm_node_id="scm1"} 10',
    'scm_raft_role{role="leader",scm_node_id="scm1"} 1',
    'scm_raft_role{role="follower",scm_node_id="scm1"} 0',
    'nodejs_gc_duration_seconds_sum{kind="minor"} 0.5',
    'nodejs_gc_duration_seconds_sum{kind="major"} 0.25',
    'odd{msg="a \\"quoted\\", comma",x="y"} 2.5 1700000000000',
    'etcd_server_is_leader 1',
    'inf_metric +Inf',
  ].join('\n');
  const samples = parsePromText(text);
  assert.equal(sumOf(samples, 'scm_raft_log_entries_per_fsync_sum'), 120);
  assert.equal(sumOf(samples, 'scm_raft_role', { role: 'leader' }), 1);
  const odd = samples.find((s) => s.name === 'odd');
  assert.deepEqual(odd?.labels, { msg: 'a "quoted", comma', x: 'y' });
  assert.equal(odd?.value, 2.5);
  assert.equal(sumOf(samples, 'etcd_server_is_leader'), 1);
  assert.equal(sumOf(samples, 'inf_metric'), Number.POSITIVE_INFINITY);
  assert.equal(sumOf(samples, 'missing'), 0);
  assert.deepEqual(readMetrics('scm', samples), { role: 'leader', fsyncs: 10, entries: 120, gcSeconds: 0.75 });
  const etcd = parsePromText('etcd_server_is_leader 0\netcd_disk_wal_fsync_duration_seconds_count 40\netcd_server_proposals_committed_total 200\n');
  assert.deepEqual(readMetrics('etcd', etcd), { role: 'follower', fsyncs: 40, entries: 200 });
});

test('percentiles are nearest-rank; the summary of nothing is zeros', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile([7], 99), 7);
  const s = summarize([5, 1, 3, 2, 4]);
  assert.equal(s.p50Ms, 3);
  assert.equal(s.maxMs, 5);
  assert.equal(s.meanMs, 3);
  assert.equal(summarize([]).p99Ms, 0);
});

function fakeResult(ops: number, measuredMs: number, loadgenCpuSeconds = 1): LoadResult {
  return { event: 'result', ops, errors: 0, errorSamples: [], measuredMs, opsPerSec: ops / (measuredMs / 1000), latency: summarize([1, 2, 3, 40]), loadgenCpuSeconds };
}

test('a load row: CPU per 1,000 ops and cores per member, entries per fsync, RSS, other processes on the machine', () => {
  const mem = (mib: number) => ({ rssBytes: mib * 1048576, peakRssBytes: mib * 1048576, anonBytes: (mib / 2) * 1048576, fileBytes: 0 });
  const before: MemberSample[] = [
    { name: 'scm1', role: 'leader', cpuSeconds: 10, memory: mem(100), fsyncs: 100, entries: 1000, gcSeconds: 1 },
    { name: 'scm2', role: 'follower', cpuSeconds: 5, memory: mem(90), fsyncs: 50, entries: 500 },
  ];
  const after: MemberSample[] = [
    { name: 'scm1', role: 'leader', cpuSeconds: 14, memory: mem(120), fsyncs: 300, entries: 3000, gcSeconds: 1.5 },
    { name: 'scm2', role: 'follower', cpuSeconds: 7, memory: mem(95), fsyncs: 150, entries: 2500 },
  ];
  const row = loadRow('scm', 16, before, after, fakeResult(2000, 10_000), { loadAverage1m: 3.5, busySeconds: 15 });
  assert.equal(row.opsPerSec, 200);
  const [l, f] = row.members;
  assert.equal(l?.cpuSecondsPer1kOps, 2);
  assert.equal(l?.cpuCores, 0.4);
  assert.equal(l?.gcSecondsPer1kOps, 0.25);
  assert.equal(f?.gcSecondsPer1kOps, null, 'no GC figure without the metric in both samples');
  assert.equal(l?.entriesPerFsync, 10);
  assert.equal(l?.fsyncsPerSec, 20);
  assert.equal(l?.rssMiB, 120);
  assert.equal(f?.entriesPerFsync, 20);
  assert.equal(row.leaderEntriesPerFsync, 10);
  assert.equal(row.clusterCpuSecondsPer1kOps, 3);
  assert.equal(row.loadgenCpuSecondsPer1kOps, 0.5);
  assert.equal(row.machineBusyCores, 1.5);
  // 1.5 busy cores: 0.4 + 0.2 for the members, 0.1 for the load generator, 0.8 for the rest.
  assert.ok(Math.abs((row.otherBusyCores ?? 0) - 0.8) < 1e-9);

  const gone = loadRow('scm', 1, before, [{ ...after[0]!, cpuSeconds: undefined, memory: undefined }], fakeResult(0, 1000), { loadAverage1m: 0, busySeconds: undefined });
  assert.equal(gone.members[0]?.cpuSecondsPer1kOps, null);
  assert.equal(gone.clusterCpuSecondsPer1kOps, null);
  assert.equal(gone.machineBusyCores, null);
});

test('failover gaps: the gap that spans the kill counts, a round without acks reports the rest of it', () => {
  const acks = [0, 10, 20, 30, 1030, 1040, 1050, 2000, 2010];
  const g = gapAround(acks, 35, 1500);
  assert.equal(g.longestGapMs, 1000, 'from the last ack before the kill (30) to the first after (1030)');
  assert.equal(g.longestGapStartMs, -5);
  assert.equal(g.firstAckAfterMs, 995);
  assert.equal(g.acks, 3);
  const none = gapAround([0, 10], 20, 520);
  assert.equal(none.longestGapMs, 510);
  assert.equal(none.firstAckAfterMs, undefined);
  assert.equal(none.acks, 0);
  assert.equal(gapAround([], 0, 100).longestGapMs, 100);
  assert.equal(longestGapWithin(acks, 0, 1000), 10);
  assert.equal(longestGapWithin(acks, 0, 3000), 1000);
});

test('start-up phases from JSON log lines (ISO or epoch ms times); missing lines are undefined', () => {
  const t0 = Date.parse('2026-01-01T00:00:00.000Z');
  const out = [
    'not json',
    '{"level":"info","time":"2026-01-01T00:00:01.500Z","msg":"checked for an interrupted snapshot install"}',
    `{"level":"info","time":${t0 + 4000},"msg":"SCM started"}`,
    '{"level":"info","time":"2026-01-01T00:00:09.000Z","msg":"SCM started"}',
  ].join('\n');
  assert.deepEqual(startupPhases(out, t0), { toStorageOpenMs: 1500, storageToStartedMs: 2500, toStartedMs: 4000 });
  assert.equal(logTime('{"msg":"SCM started"}', 'SCM started'), undefined);
  assert.deepEqual(startupPhases('', t0), { toStorageOpenMs: undefined, storageToStartedMs: undefined, toStartedMs: undefined });
});

test("the snapshot benchmark's output: its table lines and its JSON line", () => {
  const out = 'populating 10 records…\nrecords      10\n  progress {"a":1}\ntotal catch-up  0.1 s\n{"bench":"snapshot","records":10,"totalMs":100}\n';
  const parsed = parseSnapshotOutput(out);
  assert.deepEqual(parsed.lines, ['records      10', 'total catch-up  0.1 s']);
  assert.deepEqual(parsed.result, { bench: 'snapshot', records: 10, totalMs: 100 });
  assert.equal(parseSnapshotOutput('records 10\n').result, undefined);
});

test('the Markdown report: ours next to etcd per row with the ratio, and every part present', () => {
  const members: MemberSample[] = [{ name: 'scm1', role: 'leader', cpuSeconds: 1, memory: undefined, fsyncs: 1, entries: 1 }];
  const ours = loadRow('scm', 16, members, members, fakeResult(500, 1000), { loadAverage1m: 1, busySeconds: 1 });
  const etcd = loadRow('etcd', 16, members, members, fakeResult(2000, 1000), { loadAverage1m: 1, busySeconds: 1 });
  const comparison = renderLoadComparison([ours, etcd]);
  assert.match(comparison, /\| 16 \| 500 \| 2,000 \| 0\.25× \|/);
  const phases = { toStorageOpenMs: 1000, storageToStartedMs: 2000, toStartedMs: 3000 };
  const node = { name: 'scm1', role: 'leader', phases, toReadyMs: 4000, rssMiB: 300, anonMiB: 200, peakRssMiB: 350 };
  const results: BenchResults = {
    meta: {
      date: '2026-01-01T00:00:00.000Z',
      gitCommit: 'abc123',
      gitDirty: false,
      node: 'v20.0.0',
      platform: 'linux x64',
      kernel: '6.0',
      cpuModel: 'CPU',
      cpus: 2,
      memoryGiB: 8,
      loadAverageStart: [1, 2, 3],
      loadAverageEnd: [1, 2, 3],
      dataDir: '/tmp',
      filesystem: '/dev/x, ext4',
      etcdVersion: 'etcd Version: 3.4.23',
      tls: false,
      argv: ['--compare', 'etcd'],
    },
    load: {
      seconds: 1,
      warmupSeconds: 0,
      channels: 1,
      scmCommandBytes: 107,
      etcdValueBytes: 128,
      idle: [
        {
          system: 'scm',
          seconds: 5,
          members: [
            { name: 'scm2', role: 'follower', cpuCores: 0.03, rssMiB: 140 },
            { name: 'scm1', role: 'leader', cpuCores: 0.05, rssMiB: 150 },
          ],
        },
      ],
      rows: [ours, etcd],
    },
    failover: {
      callers: 16,
      rounds: [{ round: 1, killed: 'scm1', newLeader: 'scm2', electionMs: 1100, longestGapMs: 1500, firstAckAfterKillMs: 3, restartToReadyMs: 5000, restartPhases: phases, acks: 100 }],
      steadyLongestGapMs: 80,
      ops: 1000,
      errors: 0,
      errorSamples: [],
      opsPerSec: 250,
    },
    restart: {
      entries: 1000,
      generation: { method: 'directly', seconds: 1, commandBytes: 95, lastIndex: 1010 },
      logBytesPerNode: 1048576,
      dbBytesPerNode: 2097152,
      all: { nodes: [node], leaderMs: 5000, firstAllocationMs: 6000, containers: 1001 },
      follower: { ...node, role: 'follower' },
      loadRow: ours,
    },
    snapshot: { records: 10, result: { bench: 'snapshot' }, lines: ['total catch-up  0.1 s'] },
  };
  const md = renderMarkdown(results);
  for (const heading of ['## Load', '## Failover', '## Restart', '## Snapshot']) assert.ok(md.includes(heading), heading);
  assert.match(md, /commit `abc123`/);
  assert.match(md, /\| 1 \| scm1 \| scm2 \| 1,100 \| 3\.00 \| 1,500 \| 1,000 \| 3,000 \| 5,000 \|/);
  assert.match(md, /\| ours \| 5\.0 \| L 0\.050 \/ F 0\.030 \| L 150 \/ F 140 \|/);
  assert.match(md, /\| scm1 \| follower alone, after kill -9 \| 1\.00 \| 2\.00 \| 3\.00 \| 4\.00 \| 300 \| 200 \| 350 \|/);
  assert.match(md, /total catch-up {2}0\.1 s/);
  assert.doesNotMatch(md, /failed:/);
  const failed = renderMarkdown({ meta: results.meta, failures: { restart: 'timed out after 900000 ms waiting for all three nodes ready\n--- scm1 ---' } });
  assert.match(failed, /\*\*restart failed:\*\* timed out after 900000 ms waiting for all three nodes ready\n/);
});

test('smaps: anonymous memory split into the main arena, other arenas, stacks and the rest', () => {
  const mapping = (range: string, perms: string, inode: string, name: string, rss: number, anon: number): string =>
    `${range} ${perms} 00000000 00:00 ${inode}${name === '' ? '' : `                          ${name}`}\nSize:               1 kB\nRss:             ${rss} kB\nPss:             ${rss} kB\nAnonymous:       ${anon} kB\nVmFlags: rd wr mr mw me ac\n`;
  const smaps = [
    mapping('00400000-00600000', 'r-xp', '1234', '/usr/bin/node', 900, 0), // file-backed: not anonymous
    mapping('01000000-05000000', 'rw-p', '0', '[heap]', 1000, 1000),
    mapping('7f0000000000-7f0000200000', 'rw-p', '0', '', 300, 300), // 64 MiB-aligned, 2 MiB: an arena
    mapping('7f0000200000-7f0004000000', '---p', '0', '', 0, 0), // its reserved rest
    mapping('7f0004100000-7f0004300000', 'rw-p', '0', '', 50, 50), // not aligned: other
    mapping('7f0008000000-7f0010000000', 'rw-p', '0', '', 70, 70), // aligned but 128 MiB: other
    mapping('7ffc00000000-7ffc00100000', 'rw-p', '0', '[stack]', 8, 8),
  ].join('');
  assert.deepEqual(anonByMapping(smaps), { brkHeap: 1000, arenas: 300, stacks: 8, other: 120, otherCount: 2 });
  assert.deepEqual(anonByMapping(''), { brkHeap: 0, arenas: 0, stacks: 0, other: 0, otherCount: 0 });
});

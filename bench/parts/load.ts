// The load rows: closed-loop callers against ours (and etcd, alternating), one row per caller count.
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeCommand } from '../../src/statemachine/index.js';
import { ETCD_VALUE_BYTES, type LoadTarget } from '../loadgen.js';
import { runLoad } from '../lib/loadgen-process.js';
import { loadRow, sampleMembers, type LoadRow, type MemberRef, type MemberSample, type SystemKind } from '../lib/members.js';
import { machineBusySeconds } from '../lib/proc.js';
import type { IdleSample, LoadPart } from '../lib/report.js';
import type { BenchScmCluster } from '../lib/scm-cluster.js';
import type { EtcdCluster } from '../lib/etcd-cluster.js';
import type { BenchOptions } from '../lib/args.js';

export interface RowSettings {
  readonly callers: number;
  readonly channels: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
}

/** One measured row: the load generator's window, with the members sampled as it opens and closes. */
export async function measureRow(kind: SystemKind, members: () => MemberRef[], target: LoadTarget, s: RowSettings): Promise<LoadRow> {
  let before: MemberSample[] = [];
  let after: MemberSample[] = [];
  let busyBefore: number | undefined;
  let busyAfter: number | undefined;
  const result = await runLoad(
    { target, callers: s.callers, channels: s.channels, warmupMs: s.warmupSeconds * 1000, measureMs: s.seconds * 1000, recordAcks: false, callDeadlineMs: 60_000 },
    {
      onMeasuring: async () => {
        busyBefore = machineBusySeconds();
        before = await sampleMembers(kind, members());
      },
      onMeasured: async () => {
        busyAfter = machineBusySeconds();
        after = await sampleMembers(kind, members());
      },
    },
  );
  const busySeconds = busyBefore !== undefined && busyAfter !== undefined ? busyAfter - busyBefore : undefined;
  return loadRow(kind, s.callers, before, after, result, { loadAverage1m: loadavg()[0] ?? 0, busySeconds });
}

export function describeRow(r: LoadRow): string {
  const cpu = r.clusterCpuSecondsPer1kOps === null ? '-' : r.clusterCpuSecondsPer1kOps.toFixed(2);
  const byRole = [...r.members].sort((a, b) => (a.role === 'leader' ? -1 : b.role === 'leader' ? 1 : a.name.localeCompare(b.name)));
  const tag = (m: (typeof byRole)[number]): string => (m.role === 'leader' ? 'L' : 'F');
  const perNode = (pick: (m: (typeof byRole)[number]) => number | null, digits: number): string =>
    byRole.map((m) => `${tag(m)} ${pick(m)?.toFixed(digits) ?? '-'}`).join(' / ');
  return `${r.system.padEnd(5)} ${String(r.callers).padStart(4)} callers: ${Math.round(r.opsPerSec).toString().padStart(6)} ops/s  p50 ${r.p50Ms.toFixed(1)} ms  p99 ${r.p99Ms.toFixed(1)} ms  max ${r.maxMs.toFixed(0)} ms  entries/fsync(L) ${r.leaderEntriesPerFsync?.toFixed(1) ?? '-'}  CPU s/1k ops ${cpu} (${perNode((m) => m.cpuSecondsPer1kOps, 2)})  GC s/1k ops ${perNode((m) => m.gcSecondsPer1kOps, 3)}  errors ${r.errors}  load ${r.loadAverage1m.toFixed(2)}`;
}

const IDLE_SECONDS = 5;

/** What each member costs with no load at all (heartbeats, timers, metrics), over a few seconds. */
export async function measureIdle(kind: SystemKind, members: () => MemberRef[]): Promise<IdleSample> {
  const before = await sampleMembers(kind, members());
  const started = performance.now();
  await sleep(IDLE_SECONDS * 1000);
  const after = await sampleMembers(kind, members());
  const seconds = (performance.now() - started) / 1000;
  return {
    system: kind,
    seconds,
    members: after.map((a) => {
      const b = before.find((x) => x.name === a.name);
      const cpu = b?.cpuSeconds !== undefined && a.cpuSeconds !== undefined ? a.cpuSeconds - b.cpuSeconds : null;
      return { name: a.name, role: a.role, cpuCores: cpu === null ? null : cpu / seconds, rssMiB: a.memory === undefined ? null : a.memory.rssBytes / 1048576 };
    }),
  };
}

/** Bytes of the AllocateContainer command the load proposes (what one Raft entry carries). */
export function allocateCommandBytes(): number {
  return encodeCommand({
    type: 'allocateContainer',
    clientId: 'client-00000000-0000-4000-8000-000000000000',
    callId: 123_456,
    timestamp: Date.now(),
    replicationType: 'RATIS',
    replicationFactor: 'THREE',
    owner: 'bench',
    pipelineId: '00000000-0000-4000-8000-000000000000',
  }).length;
}

export async function runLoadPart(opts: BenchOptions, scm: BenchScmCluster, etcd: EtcdCluster | undefined, log: (line: string) => void): Promise<LoadPart> {
  const idle: IdleSample[] = [await measureIdle('scm', () => scm.members())];
  if (etcd !== undefined) idle.push(await measureIdle('etcd', () => etcd.memberRefs()));
  for (const i of idle) log(`${i.system.padEnd(5)} idle: ${i.members.map((m) => `${m.name} ${m.cpuCores?.toFixed(3) ?? '-'} cores`).join(', ')}`);
  const rows: LoadRow[] = [];
  for (const callers of opts.callers) {
    const settings = { callers, channels: opts.channels, warmupSeconds: opts.warmupSeconds, seconds: opts.seconds };
    const ours = await measureRow('scm', () => scm.members(), await scm.target(), settings);
    rows.push(ours);
    log(describeRow(ours));
    if (etcd !== undefined) {
      const theirs = await measureRow('etcd', () => etcd.memberRefs(), await etcd.target(), settings);
      rows.push(theirs);
      log(describeRow(theirs));
      log(`      ours/etcd ops/s ${(ours.opsPerSec / theirs.opsPerSec).toFixed(2)}x  p50 ${ours.p50Ms.toFixed(1)} / ${theirs.p50Ms.toFixed(1)} ms  p99 ${ours.p99Ms.toFixed(1)} / ${theirs.p99Ms.toFixed(1)} ms`);
    }
  }
  return { seconds: opts.seconds, warmupSeconds: opts.warmupSeconds, channels: opts.channels, scmCommandBytes: allocateCommandBytes(), etcdValueBytes: ETCD_VALUE_BYTES, idle, rows };
}

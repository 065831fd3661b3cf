// What the benchmark samples from each member of a cluster under test (ours or etcd), and how two
// samples and a load generator's result become one row of the results. Sampling reads /proc and
// the member's Prometheus endpoint; the row arithmetic is pure (unit-tested in test/bench/).
import { cpuSeconds, memoryStatus, type MemoryStatus } from './proc.js';
import { scrape, sumOf, type Sample } from './prom.js';
import type { LoadResult } from '../loadgen.js';

export type SystemKind = 'scm' | 'etcd';

export interface MemberRef {
  readonly name: string;
  readonly pid: number | undefined;
  /** The port serving Prometheus metrics on 127.0.0.1 (ours: HTTP /prom; etcd: client URL /metrics). */
  readonly metricsPort: number;
}

export interface MemberSample {
  readonly name: string;
  readonly role: 'leader' | 'follower' | 'down';
  readonly cpuSeconds: number | undefined;
  readonly memory: MemoryStatus | undefined;
  /** fsyncs of the Raft log (ours) or WAL (etcd) so far. */
  readonly fsyncs: number;
  /** Entries those fsyncs made durable (ours: the histogram's sum; etcd: proposals committed). */
  readonly entries: number;
  /**
   * Seconds spent in V8 garbage collection pauses so far (ours: prom-client's
   * nodejs_gc_duration_seconds, all kinds); what a heap setting changes, without the noise of the
   * rest of the CPU. Absent for etcd.
   */
  readonly gcSeconds?: number;
}

/** Reads the role and log-sync counters from a member's metrics. */
export function readMetrics(kind: SystemKind, samples: readonly Sample[]): Pick<MemberSample, 'role' | 'fsyncs' | 'entries' | 'gcSeconds'> {
  if (kind === 'scm') {
    return {
      role: sumOf(samples, 'scm_raft_role', { role: 'leader' }) === 1 ? 'leader' : 'follower',
      fsyncs: sumOf(samples, 'scm_raft_log_entries_per_fsync_count'),
      entries: sumOf(samples, 'scm_raft_log_entries_per_fsync_sum'),
      gcSeconds: sumOf(samples, 'nodejs_gc_duration_seconds_sum'),
    };
  }
  return {
    role: sumOf(samples, 'etcd_server_is_leader') === 1 ? 'leader' : 'follower',
    fsyncs: sumOf(samples, 'etcd_disk_wal_fsync_duration_seconds_count'),
    entries: sumOf(samples, 'etcd_server_proposals_committed_total'),
  };
}

export async function sampleMembers(kind: SystemKind, members: readonly MemberRef[]): Promise<MemberSample[]> {
  const path = kind === 'scm' ? '/prom' : '/metrics';
  return Promise.all(
    members.map(async (m): Promise<MemberSample> => {
      const cpu = m.pid === undefined ? undefined : cpuSeconds(m.pid);
      const memory = m.pid === undefined ? undefined : memoryStatus(m.pid);
      try {
        return { name: m.name, cpuSeconds: cpu, memory, ...readMetrics(kind, await scrape('127.0.0.1', m.metricsPort, path)) };
      } catch {
        return { name: m.name, role: 'down', cpuSeconds: cpu, memory, fsyncs: 0, entries: 0 };
      }
    }),
  );
}

export interface MemberRow {
  readonly name: string;
  readonly role: MemberSample['role'];
  /** CPU seconds this member used per 1,000 acknowledged operations. */
  readonly cpuSecondsPer1kOps: number | null;
  /** Seconds of V8 garbage collection pauses per 1,000 acknowledged operations (ours only). */
  readonly gcSecondsPer1kOps: number | null;
  /** Share of one core over the window. */
  readonly cpuCores: number | null;
  readonly entriesPerFsync: number | null;
  readonly fsyncsPerSec: number;
  readonly rssMiB: number | null;
  readonly anonMiB: number | null;
}

export interface LoadRow {
  readonly system: SystemKind;
  readonly callers: number;
  readonly measuredSeconds: number;
  readonly ops: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly members: readonly MemberRow[];
  /** Leader's entries per fsync (batching of its own log writes). */
  readonly leaderEntriesPerFsync: number | null;
  /** CPU seconds of all members together per 1,000 operations. */
  readonly clusterCpuSecondsPer1kOps: number | null;
  readonly loadgenCpuSecondsPer1kOps: number | null;
  /** 1-minute load average of the machine when the window closed. */
  readonly loadAverage1m: number;
  /** Cores the whole machine kept busy over the window (all processes, other users' included). */
  readonly machineBusyCores: number | null;
  /** Of those, cores used by processes other than the members and the load generator. */
  readonly otherBusyCores: number | null;
}

export interface MachineWindow {
  readonly loadAverage1m: number;
  /** Machine-wide busy CPU seconds over the window (from /proc/stat), if known. */
  readonly busySeconds: number | undefined;
}

const MiB = 1024 * 1024;

/** One row from the samples taken when the window opened and closed and the generator's result. */
export function loadRow(system: SystemKind, callers: number, before: readonly MemberSample[], after: readonly MemberSample[], result: LoadResult, machine: MachineWindow): LoadRow {
  const seconds = result.measuredMs / 1000;
  const per1k = (cpu: number): number | null => (result.ops > 0 ? (cpu / result.ops) * 1000 : null);
  const members = after.map((a): MemberRow => {
    const b = before.find((x) => x.name === a.name);
    const cpu = b?.cpuSeconds !== undefined && a.cpuSeconds !== undefined ? a.cpuSeconds - b.cpuSeconds : null;
    const gc = b?.gcSeconds !== undefined && a.gcSeconds !== undefined ? a.gcSeconds - b.gcSeconds : null;
    const fsyncs = b === undefined ? 0 : a.fsyncs - b.fsyncs;
    const entries = b === undefined ? 0 : a.entries - b.entries;
    return {
      name: a.name,
      role: a.role,
      cpuSecondsPer1kOps: cpu === null ? null : per1k(cpu),
      gcSecondsPer1kOps: gc === null ? null : per1k(gc),
      cpuCores: cpu === null || seconds <= 0 ? null : cpu / seconds,
      entriesPerFsync: fsyncs > 0 ? entries / fsyncs : null,
      fsyncsPerSec: seconds > 0 ? fsyncs / seconds : 0,
      rssMiB: a.memory === undefined ? null : a.memory.rssBytes / MiB,
      anonMiB: a.memory === undefined ? null : a.memory.anonBytes / MiB,
    };
  });
  const cpus = members.map((m) => m.cpuSecondsPer1kOps);
  const clusterCpu = cpus.every((c): c is number => c !== null) ? cpus.reduce((s, c) => s + c, 0) : null;
  const cores = members.map((m) => m.cpuCores);
  const memberCores = cores.every((c): c is number => c !== null) ? cores.reduce((s, c) => s + c, 0) : null;
  const machineCores = machine.busySeconds === undefined || seconds <= 0 ? null : machine.busySeconds / seconds;
  const loadgenCores = seconds > 0 ? result.loadgenCpuSeconds / seconds : 0;
  return {
    system,
    callers,
    measuredSeconds: seconds,
    ops: result.ops,
    errors: result.errors,
    errorSamples: result.errorSamples,
    opsPerSec: result.opsPerSec,
    p50Ms: result.latency.p50Ms,
    p90Ms: result.latency.p90Ms,
    p99Ms: result.latency.p99Ms,
    maxMs: result.latency.maxMs,
    meanMs: result.latency.meanMs,
    members,
    leaderEntriesPerFsync: members.find((m) => m.role === 'leader')?.entriesPerFsync ?? null,
    clusterCpuSecondsPer1kOps: clusterCpu,
    loadgenCpuSecondsPer1kOps: per1k(result.loadgenCpuSeconds),
    loadAverage1m: machine.loadAverage1m,
    machineBusyCores: machineCores,
    otherBusyCores: machineCores === null || memberCores === null ? null : Math.max(0, machineCores - memberCores - loadgenCores),
  };
}

// One chaos run: a 3-node cluster of real processes, the workload, the seeded fault schedule, then
// the heal and the checks. Returns the report; on a violation it writes the history, the fault
// schedule and the nodes' logs to a directory and says which seed replays it.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { ChaosCluster } from './chaos-cluster.js';
import { openPipeline } from '../integration/workload.js';
import { checkContainerHistory, recordedOrderProblem } from './container-model.js';
import { FaultInjector, type FaultRecord } from './faults.js';
import type { HistoryEntry, ListedContainer } from './history.js';
import { Netfilter, netfilterAvailability } from './netfilter.js';
import {
  checkAcknowledgedEverywhere,
  checkAppliedOnce,
  checkFailedHadNoEffect,
  checkHealBound,
  checkIdsUniqueAndIncreasing,
  checkNoPhantomReads,
  checkNoUnexpectedExit,
  checkReplicasIdentical,
  type NodeTable,
  type ReplicaState,
  type Violation,
} from './post-heal.js';
import { FAULT_KINDS, NETWORK_KINDS, planFaults, type FaultKind, type FaultStep } from './schedule.js';
import { formatSummary } from './summary.js';
import { longestAckGap } from './unavailability.js';
import { Workload } from './workload.js';

/** Small segments, frequent snapshots and purges, so followers that fall behind install snapshots. */
export const CHAOS_CONFIG: Record<string, string> = {
  'ozone.scm.ha.ratis.segment.size': '16KB',
  'ozone.scm.ha.ratis.snapshot.threshold': '100',
  'ozone.scm.ha.ratis.log.purge.enabled': 'true',
  'ozone.scm.ha.ratis.log.purge.gap': '20',
  // Re-sends of unknown calls come within the run: the retry cache must still hold their results.
  'ozone.scm.ha.ratis.server.retry.cache.timeout': '60m',
};

export interface ChaosOptions {
  readonly seed: number;
  /** Faults are started until this much time has passed (the first round of every kind always runs). */
  readonly durationMs: number;
  readonly clients: number;
  readonly thinkMs: number;
  readonly healBoundMs: number;
  /** Kinds to run (default: all that this machine can run). */
  readonly kinds?: readonly FaultKind[];
  /** Where a failing run writes its history, schedule and logs. */
  readonly outDir: string;
  /** Mutual TLS on every port (default: plaintext). */
  readonly tls?: boolean;
  /** Write the history and the final table even when no check fails, so `npm run chaos:check` can re-check them. */
  readonly keepHistory?: boolean;
  readonly log: (line: string) => void;
}

export interface ChaosReport {
  readonly seed: number;
  readonly violations: readonly Violation[];
  readonly faults: readonly FaultRecord[];
  readonly history: readonly HistoryEntry[];
  readonly summary: string;
  readonly kindsRun: readonly FaultKind[];
  readonly skippedKinds: readonly string[];
  readonly installs: number;
  /** Set when the run wrote its evidence (on a violation, or with keepHistory). */
  readonly artifacts?: string;
  /** The iptables chain the run used (removed by the time the report is returned). */
  readonly chain?: string;
}

const CHECKS = [
  'linearizable',
  'acknowledged-everywhere',
  'ids-unique-increasing',
  'applied-once',
  'failed-no-effect',
  'no-phantom-reads',
  'replicas-identical (applied index, scm.db digest, table, consistency check)',
  'no-unexpected-exit',
  'clean-stop',
  'healed-within-bound',
];

async function readTable(read: (startId: number) => Promise<ListedContainer[]>): Promise<ListedContainer[]> {
  const all: ListedContainer[] = [];
  for (let startId = 1; ; ) {
    const page = await read(startId);
    all.push(...page);
    if (page.length < 1_000) return all;
    startId = (page[page.length - 1] as ListedContainer).id + 1;
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const t0 = performance.now();
  // One directory per run for its evidence (history, schedule, logs), named by seed and start time.
  const evidenceDir = resolve(options.outDir, `seed-${options.seed}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  // The history's clock is not rounded: a client's next call must be recorded after its previous
  // answer (container-model.ts recordedOrderProblem), which a 0.1 ms clock could not tell apart.
  const preciseClock = (): number => performance.now() - t0;
  const clock = (): number => Math.round(preciseClock() * 10) / 10;
  const log = (line: string): void => options.log(`[${(clock() / 1000).toFixed(1).padStart(6)} s] ${line}`);
  const netOk = netfilterAvailability();
  const wanted = options.kinds ?? FAULT_KINDS;
  const kinds = wanted.filter((k) => netOk.ok || !NETWORK_KINDS.has(k));
  const skippedKinds = wanted.filter((k) => !kinds.includes(k)).map((k) => `${k} (${netOk.ok ? '' : netOk.reason})`);
  const partitions = netOk.ok ? 'iptables owner match, one uid per node' : `skipped: ${netOk.reason}; isolation uses SIGSTOP`;
  if (!netOk.ok) log(`partitions are skipped: ${netOk.reason}`);

  const cluster = await ChaosCluster.create({ nodes: 3, config: CHAOS_CONFIG, separateUids: netOk.ok, tls: options.tls === true, clock });
  const net = netOk.ok ? new Netfilter(`SCMCHAOS${cluster.cluster.basePort}`) : undefined;
  const faults: FaultRecord[] = [];
  let workload: Workload | undefined;
  const violations: Violation[] = [];
  let steps: FaultStep[] = [];
  try {
    net?.install();
    await cluster.bootstrapAll();
    log(`cluster up in ${cluster.cluster.dir}`);
    const admin = cluster.cluster.client(cluster.cluster.allClientAddresses(), 30_000);
    await openPipeline(admin);

    workload = new Workload({
      clients: options.clients,
      seed: options.seed,
      clock: preciseClock,
      thinkMs: options.thinkMs,
      connect: (name) => cluster.client(6_000, 2_000, `${name}-${options.seed}`),
    });
    workload.start();
    await sleep(1_000);

    const injector = new FaultInjector({ cluster, net, clock, log, healBoundMs: options.healBoundMs });
    steps = planFaults(options.seed, kinds, 10_000);
    for (const step of steps) {
      if (step.index >= kinds.length && clock() >= options.durationMs) break;
      await sleep(step.quietMs);
      const record = await injector.run(step);
      faults.push(record);
      const heal = record.recoveredAt === null ? 'NOT recovered' : `recovered ${((record.recoveredAt - record.healedAt) / 1000).toFixed(1)} s after heal`;
      log(`fault ${step.index} ${step.kind} ${record.target} held ${((record.healedAt - record.startedAt) / 1000).toFixed(1)} s, ${heal}${record.detail !== '' ? `; ${record.detail}` : ''}`);
    }
    await sleep(1_000);
    await workload.stop();
    log(`workload stopped: ${workload.history.length} operations`);

    // Heal: everything reconnected and resumed; every member caught up.
    net?.healAll();
    for (const k of cluster.members) if (cluster.isPaused(k)) cluster.resume(k);
    const recovered = await injector.waitRecovered(options.healBoundMs);
    if (recovered === null) violations.push({ check: 'healed-within-bound', message: `the cluster did not recover within ${options.healBoundMs / 1000} s after the last fault` });

    // The final table through the leader, as linearizable reads recorded in the history.
    const reader = cluster.client(30_000, 5_000, `final-${options.seed}`);
    const finalTable = await readTable(async (startId) => {
      const invoke = preciseClock();
      const containers = (await reader.listContainers({ startId, count: 1_000, consistency: 'LINEARIZABLE' })).map((c) => ({ id: c.containerId, state: c.state, owner: c.owner }));
      workload!.history.push({ client: 'final', call: { kind: 'list', startId, count: 1_000, consistency: 'LINEARIZABLE' }, invoke, complete: preciseClock(), outcome: { type: 'ok', containers }, sends: 1 });
      return containers;
    });
    await injector.waitRecovered(options.healBoundMs);
    const tables: NodeTable[] = [];
    for (const k of cluster.members) {
      const own = cluster.clientOf(k, 30_000);
      tables.push({
        node: cluster.name(k),
        containers: await readTable(async (startId) => (await own.listContainers({ startId, count: 1_000, consistency: 'STALE' })).map((c) => ({ id: c.containerId, state: c.state, owner: c.owner }))),
      });
    }
    const consistency = await admin.checkConsistency();
    for (const n of consistency.nodes) {
      if (n.state === 'MISMATCH') violations.push({ check: 'replicas-identical', message: `consistency check at ${consistency.index}: ${n.nodeId} MISMATCH (${n.detail})` });
    }
    await injector.waitRecovered(options.healBoundMs);
    const applied = new Map<number, number>();
    for (const k of cluster.members) applied.set(k, (await cluster.clientOf(k, 5_000).getScmRoles({ selfOnly: true }))[0]?.appliedIndex ?? -1);

    const exitCodes = await cluster.stopAllLeaderLast();
    for (const [k, code] of exitCodes) if (code !== 0) violations.push({ check: 'clean-stop', message: `${cluster.name(k)} exited with ${code} on SIGTERM` });
    const replicas: ReplicaState[] = [];
    for (const k of cluster.members) replicas.push({ node: cluster.name(k), appliedIndex: applied.get(k) ?? -1, digest: await cluster.cluster.digest(k) });
    let installs = 0;
    for (const k of cluster.members) {
      const file = cluster.cluster.node(k).logFile;
      if (existsSync(file)) installs += (await readFile(file, 'utf8')).match(/snapshot installed/g)?.length ?? 0;
    }

    const history = workload.history;
    // Written before the check, so a check that runs out of time or memory can be re-run on its own.
    const kept = options.keepHistory === true ? await writeHistory(evidenceDir, history, finalTable) : undefined;
    if (kept !== undefined) log(`history written to ${kept} (re-check: npm run chaos:check -- ${kept})`);
    log('checking the history');
    const disorder = recordedOrderProblem(history);
    const linear = disorder === undefined ? checkContainerHistory(history, finalTable) : { ok: false as const, inconclusive: true, explanation: disorder };
    if (!linear.ok) violations.push({ check: 'linearizable', message: linear.explanation });
    violations.push(
      ...checkAcknowledgedEverywhere(history, tables),
      ...checkIdsUniqueAndIncreasing(history),
      ...checkAppliedOnce(tables),
      ...checkFailedHadNoEffect(history, tables),
      ...checkNoPhantomReads(history),
      ...checkReplicasIdentical(replicas, tables),
      ...checkNoUnexpectedExit(cluster.unexpectedExits),
      ...checkHealBound(faults.map((f) => ({ fault: `fault ${f.index} ${f.kind} on ${f.target}`, healMs: f.recoveredAt === null ? null : f.recoveredAt - f.healedAt })), options.healBoundMs),
    );

    const acks = workload.ackTimes();
    const unavailability = new Map(faults.map((f) => [f.index, longestAckGap(acks, f.startedAt, f.recoveredAt ?? clock())]));
    const summary = formatSummary({ seed: options.seed, elapsedMs: clock(), partitions, tls: options.tls === true, history, faults, unavailabilityMs: unavailability, installs, checks: CHECKS, violations, skippedKinds });
    let artifacts: string | undefined;
    if (violations.length > 0 || kept !== undefined) artifacts = await writeEvidence(evidenceDir, options, cluster, history, steps, faults, summary);
    return {
      seed: options.seed,
      violations,
      faults,
      history,
      summary,
      kindsRun: kinds,
      skippedKinds,
      installs,
      ...(artifacts !== undefined ? { artifacts } : {}),
      ...(net !== undefined ? { chain: net.chain } : {}),
    };
  } catch (err) {
    // A run that broke down (a step that threw) still leaves its evidence behind.
    const summary = `chaos run broke down (seed ${options.seed}): ${(err as Error).stack ?? String(err)}\n${cluster.cluster.tails(20)}`;
    const artifacts = await writeEvidence(evidenceDir, options, cluster, workload?.history ?? [], steps, faults, summary).catch(() => undefined);
    throw new Error(`${summary}${artifacts !== undefined ? `\nevidence in ${artifacts}` : ''}\nreplay: npm run chaos -- --seed ${options.seed}${options.tls === true ? ' --tls' : ''}`, { cause: err });
  } finally {
    if (workload !== undefined) await workload.stop();
    net?.removeSync();
    await cluster.destroy();
  }
}

/** history.json and final-table.json: what `npm run chaos:check` reads back. */
async function writeHistory(dir: string, history: readonly HistoryEntry[], finalTable: readonly ListedContainer[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'history.json'), JSON.stringify(history, null, 1));
  await writeFile(join(dir, 'final-table.json'), JSON.stringify(finalTable));
  return dir;
}

async function writeEvidence(
  dir: string,
  options: ChaosOptions,
  cluster: ChaosCluster,
  history: readonly HistoryEntry[],
  steps: readonly FaultStep[],
  faults: readonly FaultRecord[],
  summary: string,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'summary.txt'), `${summary}\n\nreplay: npm run chaos -- --seed ${options.seed} --minutes ${options.durationMs / 60_000}${options.tls === true ? ' --tls' : ''}\n`);
  await writeFile(join(dir, 'history.json'), JSON.stringify(history, null, 1));
  await writeFile(join(dir, 'schedule.json'), JSON.stringify({ seed: options.seed, planned: steps.slice(0, faults.length + 1), run: faults }, null, 1));
  for (const k of cluster.members) {
    const file = cluster.cluster.node(k).logFile;
    if (existsSync(file)) await copyFile(file, join(dir, `${cluster.name(k)}.log`));
    // A node still running has its output in memory only (the harness writes it out at exit).
    if (cluster.isRunning(k)) await writeFile(join(dir, `${cluster.name(k)}.log`), cluster.cluster.output(k), { flag: 'a' });
  }
  return dir;
}

// Failover: under a steady closed-loop load, kill -9 the leader, let the others elect, spawn the
// killed node again and wait until it is ready; N rounds. The load generator records the time of
// every acknowledged allocation, and each round reports the longest stretch without one.
import { setTimeout as sleep } from 'node:timers/promises';
import { LoadGenerator } from '../lib/loadgen-process.js';
import { nowMs } from '../loadgen.js';
import { gapAround, longestGapWithin } from '../lib/stats.js';
import { startupPhases } from '../lib/node-log.js';
import type { BenchScmCluster } from '../lib/scm-cluster.js';
import type { FailoverPart, FailoverRound } from '../lib/report.js';
import type { BenchOptions } from '../lib/args.js';

const STEADY_MS = 3_000;

/** Polls until `check` returns a value; the time it was first seen (epoch ms) and the value. */
export async function pollUntil<T>(what: string, timeoutMs: number, intervalMs: number, check: () => Promise<T | undefined>): Promise<{ at: number; value: T }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return { at: nowMs(), value };
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The 1-based number of a node that reports itself leader on /status, among `candidates`. */
export async function leaderByStatus(cluster: BenchScmCluster, candidates: readonly number[]): Promise<number | undefined> {
  const statuses = await Promise.all(candidates.map((k) => cluster.status(k)));
  const i = statuses.findIndex((s) => s?.role.toUpperCase() === 'LEADER');
  return i < 0 ? undefined : candidates[i];
}

export async function runFailoverPart(opts: BenchOptions, cluster: BenchScmCluster, log: (line: string) => void): Promise<FailoverPart> {
  const all = [1, 2, 3];
  const generator = new LoadGenerator();
  let measuringAt: number | undefined;
  const target = { kind: 'scm' as const, addresses: cluster.harness.allClientAddresses() };
  const resultPromise = generator.run(
    { target, callers: opts.failoverCallers, channels: opts.channels, warmupMs: 2_000, measureMs: 0, recordAcks: true, callDeadlineMs: 120_000 },
    { onMeasuring: (at) => void (measuringAt = at) },
  );
  resultPromise.catch(() => undefined);
  const kills: Array<{ round: number; killed: number; killAt: number; newLeader: number | undefined; electedAt: number | undefined; spawnAt: number; readyAt: number | undefined; output: string }> = [];
  try {
    await pollUntil('the load generator to start measuring', 60_000, 50, async () => measuringAt);
    await sleep(STEADY_MS);
    for (let round = 1; round <= opts.failoverRounds; round++) {
      const { value: leader } = await pollUntil('a leader', 60_000, 20, () => leaderByStatus(cluster, all));
      const killAt = nowMs();
      await cluster.harness.kill(leader, 'SIGKILL');
      const others = all.filter((k) => k !== leader);
      let newLeader: number | undefined;
      let electedAt: number | undefined;
      try {
        const elected = await pollUntil('a new leader', 60_000, 20, () => leaderByStatus(cluster, others));
        newLeader = elected.value;
        electedAt = elected.at;
      } catch (err) {
        log(`  round ${round}: ${(err as Error).message}`);
      }
      const spawnAt = nowMs();
      cluster.harness.start(leader);
      let readyAt: number | undefined;
      try {
        readyAt = (await pollUntil(`scm${leader} to be ready again`, 120_000, 50, async () => ((await cluster.ready(leader)) ? true : undefined))).at;
      } catch (err) {
        log(`  round ${round}: ${(err as Error).message}`);
      }
      kills.push({ round, killed: leader, killAt, newLeader, electedAt, spawnAt, readyAt, output: cluster.harness.output(leader) });
      log(
        `  round ${round}: killed scm${leader}; scm${newLeader ?? '?'} leads after ${electedAt === undefined ? '?' : Math.round(electedAt - killAt)} ms; scm${leader} ready ${readyAt === undefined ? '?' : Math.round(readyAt - spawnAt)} ms after its restart`,
      );
      await sleep(STEADY_MS);
    }
  } finally {
    generator.stop();
  }
  let result;
  try {
    result = await resultPromise;
  } finally {
    generator.kill();
  }
  const acks = result.acks ?? [];
  const end = (measuringAt ?? 0) + result.measuredMs;
  const rounds: FailoverRound[] = kills.map((k, i) => {
    const to = kills[i + 1]?.killAt ?? end;
    const gap = gapAround(acks, k.killAt, to);
    return {
      round: k.round,
      killed: `scm${k.killed}`,
      newLeader: k.newLeader === undefined ? undefined : `scm${k.newLeader}`,
      electionMs: k.electedAt === undefined ? undefined : k.electedAt - k.killAt,
      longestGapMs: gap.longestGapMs,
      firstAckAfterKillMs: gap.firstAckAfterMs,
      restartToReadyMs: k.readyAt === undefined ? undefined : k.readyAt - k.spawnAt,
      restartPhases: startupPhases(k.output, k.spawnAt),
      acks: gap.acks,
    };
  });
  for (const r of rounds) log(`  round ${r.round}: longest gap ${Math.round(r.longestGapMs)} ms, first ack ${r.firstAckAfterKillMs === undefined ? '-' : Math.round(r.firstAckAfterKillMs)} ms after the kill`);
  return {
    callers: opts.failoverCallers,
    rounds,
    steadyLongestGapMs: longestGapWithin(acks, measuringAt ?? 0, kills[0]?.killAt ?? end),
    ops: result.ops,
    errors: result.errors,
    errorSamples: result.errorSamples,
    opsPerSec: result.opsPerSec,
  };
}

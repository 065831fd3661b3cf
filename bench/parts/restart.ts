// Restart with a large state: a bootstrapped cluster is stopped, N AllocateContainer entries are
// generated straight into every node's Raft log and scm.db (bench/lib/generate-log.ts), then all
// three nodes start together as after a full outage (phases from their logs, time to a leader and
// to the first acknowledged allocation, RSS with N containers), then one follower is killed -9 and
// started alone, and a short load row runs with the large state in place.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { raftGroupDir } from '../../src/server/scm-node.js';
import { readVersionFile } from '../../src/server/version-file.js';
import { nowMs } from '../loadgen.js';
import { BenchScmCluster } from '../lib/scm-cluster.js';
import { generateAllocations, nodeDirs, type NodeDirs } from '../lib/generate-log.js';
import { memoryStatus } from '../lib/proc.js';
import { startupPhases } from '../lib/node-log.js';
import { scrape, sumOf } from '../lib/prom.js';
import { leaderByStatus, pollUntil } from './failover.js';
import { describeRow, measureRow } from './load.js';
import type { RestartNode, RestartPart } from '../lib/report.js';
import type { BenchOptions } from '../lib/args.js';

const MiB = 1024 * 1024;

function duBytes(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

function memoryOf(pid: number | undefined): Pick<RestartNode, 'rssMiB' | 'anonMiB' | 'peakRssMiB'> {
  const m = pid === undefined ? undefined : memoryStatus(pid);
  return { rssMiB: m === undefined ? null : m.rssBytes / MiB, anonMiB: m === undefined ? null : m.anonBytes / MiB, peakRssMiB: m === undefined ? null : m.peakRssBytes / MiB };
}

/**
 * Stops the cluster once every node has applied the same last entry (the generator continues one
 * common log) and returns each node's directories for generateAllocations.
 */
export async function stopWithOneLog(cluster: BenchScmCluster, all: readonly number[]): Promise<NodeDirs[]> {
  await pollUntil('all nodes to apply the same last entry', 60_000, 100, async () => {
    const s = await Promise.all(all.map((k) => cluster.status(k)));
    const applied = s.map((x) => x?.indexes.applied);
    const last = s.map((x) => x?.indexes.lastLog);
    return applied.every((a) => a !== undefined && a === applied[0] && a === last[0]) && last.every((l) => l === last[0]) ? true : undefined;
  });
  await cluster.harness.stopAllLeaderLast();
  return all.map((k) => {
    const config = cluster.harness.config(k);
    return nodeDirs(`scm${k}`, raftGroupDir(config, readVersionFile(config.dbDir).clusterId), config.dbDir, config.raft);
  });
}

export async function runRestartPart(opts: BenchOptions, log: (line: string) => void): Promise<RestartPart> {
  const all = [1, 2, 3];
  const cluster = await BenchScmCluster.start({ nodeArgs: [...opts.nodeArgs], nodeEnv: { ...opts.nodeEnv }, compiled: opts.compiled });
  try {
    const h = cluster.harness;
    const dirs = await stopWithOneLog(cluster, all);

    log(`  generating ${opts.restartEntries.toLocaleString('en-US')} allocations into each node's Raft log and scm.db…`);
    let lastReport = 0;
    const generated = await generateAllocations(dirs, opts.restartEntries, (done) => {
      if (done - lastReport >= 100_000 || done === opts.restartEntries) {
        lastReport = done;
        log(`    ${done.toLocaleString('en-US')}`);
      }
    });
    log(`  generated in ${generated.seconds.toFixed(1)} s (${Math.round(opts.restartEntries / generated.seconds).toLocaleString('en-US')} entries/s for three nodes)`);
    const first = dirs[0];
    const logBytes = first === undefined ? 0 : duBytes(join(first.groupDir, 'current'));
    const dbBytes = first === undefined ? 0 : duBytes(first.scmDbDir);

    // All three together, as after a full outage.
    const spawnAt = nowMs();
    for (const k of all) h.start(k);
    const client = h.client(h.allClientAddresses(), 600_000);
    const firstAllocation = client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' }).then(() => nowMs());
    firstAllocation.catch(() => undefined);
    const readyAt = new Map<number, number>();
    let leaderAt: number | undefined;
    await pollUntil('all three nodes ready', 900_000, 50, async () => {
      if (leaderAt === undefined && (await leaderByStatus(cluster, all)) !== undefined) leaderAt = nowMs();
      for (const k of all) if (!readyAt.has(k) && (await cluster.ready(k))) readyAt.set(k, nowMs());
      return readyAt.size === all.length ? true : undefined;
    });
    const allocatedAt = await firstAllocation;
    await sleep(5_000);
    const leader = (await leaderByStatus(cluster, all)) ?? 0;
    const nodes: RestartNode[] = all.map((k) => ({
      name: `scm${k}`,
      role: k === leader ? 'leader' : 'follower',
      phases: startupPhases(h.output(k), spawnAt),
      toReadyMs: (readyAt.get(k) ?? Number.NaN) - spawnAt,
      ...memoryOf(h.node(k).process?.pid),
    }));
    const containers = sumOf(await scrape('127.0.0.1', h.node(leader || 1).ports.http, '/prom'), 'scm_containers');
    for (const n of nodes) {
      log(`  ${n.name} (${n.role}): log recovered ${((n.phases.toStorageOpenMs ?? NaN) / 1000).toFixed(2)} s, started ${((n.phases.toStartedMs ?? NaN) / 1000).toFixed(2)} s, ready ${((n.toReadyMs ?? NaN) / 1000).toFixed(2)} s after spawn; RSS ${n.rssMiB?.toFixed(0)} MiB`);
    }

    // One follower alone: kill -9 and start again while the other two run.
    const follower = all.find((k) => k !== leader) ?? 2;
    await h.kill(follower, 'SIGKILL');
    const followerSpawn = nowMs();
    h.start(follower);
    const followerReady = await pollUntil(`scm${follower} ready`, 900_000, 50, async () => ((await cluster.ready(follower)) ? true : undefined));
    await sleep(2_000);
    const followerNode: RestartNode = {
      name: `scm${follower}`,
      role: 'follower',
      phases: startupPhases(h.output(follower), followerSpawn),
      toReadyMs: followerReady.at - followerSpawn,
      ...memoryOf(h.node(follower).process?.pid),
    };
    log(`  scm${follower} alone after kill -9: ready ${((followerNode.toReadyMs ?? NaN) / 1000).toFixed(2)} s after spawn`);

    const callers = opts.failoverCallers;
    const row = await measureRow('scm', () => cluster.members(), await cluster.target(), { callers, channels: opts.channels, warmupSeconds: opts.warmupSeconds, seconds: opts.seconds });
    log(`  ${describeRow(row)}`);
    return {
      entries: opts.restartEntries,
      generation: { method: 'directly on scm1 with the nodes stopped (RaftStorage.append + ScmStateMachine.applyBatch), then its log segments and scm.db copied to scm2 and scm3', seconds: generated.seconds, commandBytes: generated.commandBytes, lastIndex: generated.lastIndex },
      logBytesPerNode: logBytes,
      dbBytesPerNode: dbBytes,
      all: { nodes, leaderMs: leaderAt === undefined ? undefined : leaderAt - spawnAt, firstAllocationMs: allocatedAt - spawnAt, containers },
      follower: followerNode,
      loadRow: row,
    };
  } finally {
    await cluster.destroy();
  }
}

// `npm run bench`: the performance of a real 3-node cluster (separate `scm start` processes on
// loopback, the default durable configuration), driven by a separate load generator process
// (bench/loadgen.ts) through our TypeScript client.
//
//   load      AllocateContainer, closed loop, 1/16/64/256 callers for a fixed time each: ops/s,
//             p50/p99/max latency, entries per fsync (the nodes' /prom), CPU seconds per node per
//             1,000 ops and RSS per node (from /proc, read from outside the nodes);
//             --compare etcd runs the same rows against a 3-member etcd (KV.Put, 128-byte values),
//             alternating ours and etcd's;
//   failover  kill -9 the leader under load N times, restarting it each time: the longest gap
//             between acknowledged allocations;
//   restart   1 M entries generated into the log and scm.db of every node, then a restart of all
//             three, and of one follower alone; RSS per node at 1 M containers;
//   snapshot  bench/snapshot.bench.ts (checkpoint, transfer and install of a 1 M-record scm.db).
//
// Writes bench/results/<date>-<commit>.json and .md (see bench/lib/report.ts) and prints the
// Markdown. `npm run bench -- --help` lists the flags.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, platform, arch } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, USAGE, UsageError, type BenchOptions } from './lib/args.js';
import { BenchScmCluster } from './lib/scm-cluster.js';
import { EtcdCluster, etcdVersion } from './lib/etcd-cluster.js';
import { renderMarkdown, type BenchResults, type FailoverPart, type LoadPart, type RestartPart, type RunMeta, type SnapshotPart } from './lib/report.js';
import { runLoadPart } from './parts/load.js';
import { runFailoverPart } from './parts/failover.js';
import { runRestartPart } from './parts/restart.js';
import { runSnapshotPart } from './parts/snapshot.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

function filesystemOf(dir: string): string {
  try {
    const lines = execFileSync('df', ['-PT', dir], { encoding: 'utf8' }).trim().split('\n');
    const f = (lines[1] ?? '').split(/\s+/);
    return `${f[0] ?? '?'}, ${f[1] ?? '?'}`;
  } catch {
    return 'unknown';
  }
}

function meta(argv: readonly string[], opts: BenchOptions): RunMeta {
  const dirty = git(['status', '--porcelain'])
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.slice(3).startsWith('bench/results/'));
  return {
    date: new Date().toISOString(),
    gitCommit: git(['rev-parse', '--short=12', 'HEAD']) || 'unknown',
    gitDirty: dirty.length > 0,
    node: process.version,
    platform: `${platform()} ${arch()}`,
    kernel: release(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryGiB: totalmem() / 1024 ** 3,
    loadAverageStart: loadavg(),
    loadAverageEnd: loadavg(),
    dataDir: tmpdir(),
    filesystem: filesystemOf(tmpdir()),
    etcdVersion: opts.compareEtcd ? etcdVersion() : undefined,
    tls: opts.tls,
    argv,
  };
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let opts: BenchOptions | 'help';
  try {
    opts = parseBenchArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts === 'help') {
    log(USAGE);
    return 0;
  }
  const runMeta = meta(argv, opts);
  if (opts.compareEtcd && runMeta.etcdVersion === undefined) {
    process.stderr.write('--compare etcd: no etcd binary at /usr/bin/etcd (Debian package etcd-server: apt-get install etcd-server), or set ETCD_BIN\n');
    return 2;
  }
  log(`scm-ha benchmark: ${opts.parts.join(', ')}${opts.tls ? ' with mutual TLS' : ''}${opts.compareEtcd ? ' (compared with etcd)' : ''}; commit ${runMeta.gitCommit}${runMeta.gitDirty ? '+dirty' : ''}, Node ${runMeta.node}, ${runMeta.cpus} CPUs, load average ${runMeta.loadAverageStart.map((v) => v.toFixed(2)).join(' ')}`);

  let load: LoadPart | undefined;
  let failover: FailoverPart | undefined;
  let restart: RestartPart | undefined;
  let snapshot: SnapshotPart | undefined;
  // A part that fails is reported and the others still run: their results are written either way.
  const failures: Record<string, string> = {};
  const attempt = async <T>(part: string, body: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await body();
    } catch (err) {
      failures[part] = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${part} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      return undefined;
    }
  };

  if (opts.parts.includes('load') || opts.parts.includes('failover')) {
    log('\nstarting a 3-node cluster…');
    const scm = await attempt('cluster start', () => BenchScmCluster.start({ tls: opts.tls, nodeArgs: [...opts.nodeArgs], nodeEnv: { ...opts.nodeEnv }, compiled: opts.compiled }));
    if (scm !== undefined) {
      try {
        if (opts.parts.includes('load')) {
          let etcd: EtcdCluster | undefined;
          if (opts.compareEtcd) {
            log('starting a 3-member etcd cluster…');
            etcd = await attempt('etcd start', () => EtcdCluster.start());
          }
          if (!opts.compareEtcd || etcd !== undefined) {
            log(`\n== load: ${opts.callers.join(', ')} callers, ${opts.warmupSeconds} s warm-up + ${opts.seconds} s per row`);
            load = await attempt('load', () => runLoadPart(opts, scm, etcd, log));
          }
          await etcd?.destroy();
        }
        if (opts.parts.includes('failover')) {
          log(`\n== failover: ${opts.failoverRounds} leader kills under ${opts.failoverCallers} callers`);
          failover = await attempt('failover', () => runFailoverPart(opts, scm, log));
        }
      } finally {
        await scm.destroy();
      }
    }
  }
  if (opts.parts.includes('restart')) {
    log(`\n== restart with ${opts.restartEntries.toLocaleString('en-US')} log entries and containers`);
    restart = await attempt('restart', () => runRestartPart(opts, log));
  }
  if (opts.parts.includes('snapshot')) {
    log(`\n== snapshot: bench/snapshot.bench.ts --records ${opts.snapshotRecords}`);
    snapshot = await attempt('snapshot', () => runSnapshotPart(opts.snapshotRecords, log));
  }

  const results: BenchResults = {
    meta: { ...runMeta, loadAverageEnd: loadavg() },
    ...(load !== undefined ? { load } : {}),
    ...(failover !== undefined ? { failover } : {}),
    ...(restart !== undefined ? { restart } : {}),
    ...(snapshot !== undefined ? { snapshot } : {}),
    ...(Object.keys(failures).length > 0 ? { failures } : {}),
  };
  const markdown = renderMarkdown(results);
  log(`\n${markdown}`);
  if (!opts.noWrite) {
    const dir = opts.outDir ?? join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const stem = `${results.meta.date.slice(0, 19).replace(/:/g, '-')}-${results.meta.gitCommit}`;
    writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(dir, `${stem}.md`), markdown);
    log(`results: ${join(dir, stem)}.{json,md}`);
  }
  return Object.keys(failures).length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

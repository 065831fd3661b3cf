// State machine load benchmark: how long ScmStateMachine.open takes on an scm.db holding N
// containers, and the memory the loaded state holds. Numbers only, no assertions.
//
// The scm.db is built with the real ScmStateMachine.applyBatch (as bench/lib/generate-log.ts does
// for the restart part, without the Raft log): 3 datanodes, one OPEN RATIS/THREE pipeline, then N
// AllocateContainer entries from one client in batches of 1,000. The leader's clock in the commands
// moves 1 ms every 10 entries, so the replicated retry cache ends full (100,000 records by default),
// as it does after the restart part's generator. The directory is kept (default under the system
// temp dir, named by N) and reused by later runs, so before/after figures read the same bytes.
//
// Each measurement runs in a fresh process started with --expose-gc: a gc and a baseline, then
// ScmStateMachine.open timed (wall and CPU seconds: on a shared machine CPU time is the steadier
// figure), then a gc and process.memoryUsage() plus /proc/self/status (RSS,
// RssAnon, VmHWM), and the time of a few queries.
//
// Usage: npm run bench:load -- [--containers N] [--db DIR] [--runs K] [--rebuild]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeCommand, ScmStateMachine, type ScmCommand } from '../src/statemachine/index.js';
import type { LogEntry } from '../src/log-entry.js';

const APPLY_BATCH = 1_000;
const CLIENT_ID = 'client-bench-load';
const BASE_CLOCK = 1_700_000_000_000;

interface Options {
  readonly containers: number;
  readonly db: string;
  readonly runs: number;
  readonly rebuild: boolean;
  readonly measure: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      containers: { type: 'string', default: '1000000' },
      db: { type: 'string' },
      runs: { type: 'string', default: '1' },
      rebuild: { type: 'boolean', default: false },
      measure: { type: 'boolean', default: false },
    },
  });
  const containers = Number(values.containers);
  const runs = Number(values.runs);
  if (!Number.isSafeInteger(containers) || containers < 1) throw new Error(`--containers needs a positive integer, got ${values.containers}`);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs needs a positive integer, got ${values.runs}`);
  return { containers, runs, rebuild: values.rebuild, measure: values.measure, db: values.db ?? join(tmpdir(), `scm-load-bench-${containers}`, 'scm.db') };
}

/** Builds scm.db with `containers` allocations through applyBatch. */
async function build(dir: string, containers: number): Promise<number> {
  const started = performance.now();
  const sm = await ScmStateMachine.open(dir);
  let index = 0;
  let callId = 0;
  let clock = BASE_CLOCK;
  const entry = (cmd: ScmCommand): LogEntry => ({ term: 1, index: ++index, payload: { kind: 'data', data: encodeCommand(cmd) } });
  const envelope = () => ({ clientId: CLIENT_ID, callId: ++callId, timestamp: clock });
  try {
    const setup: LogEntry[] = [{ term: 1, index: ++index, payload: { kind: 'config', peers: [{ id: 'scm1', address: '127.0.0.1:9894', priority: 0 }], listeners: [] } }];
    for (let i = 1; i <= 3; i++) {
      setup.push(entry({ ...envelope(), type: 'registerDatanode', uuid: `dn-${i}`, hostname: `host${i}`, ipAddress: `10.0.0.${i}`, ports: [{ name: 'RATIS', value: 9858 }] }));
    }
    setup.push(entry({ ...envelope(), type: 'createPipeline', pipelineId: 'pipeline-1', members: ['dn-1', 'dn-2', 'dn-3'], replicationType: 'RATIS', replicationFactor: 'THREE', leaderId: 'dn-1' }));
    await sm.applyBatch(setup);
    for (let done = 0; done < containers; ) {
      const batch: LogEntry[] = [];
      for (; batch.length < APPLY_BATCH && done < containers; done++) {
        if (done % 10 === 0) clock++;
        batch.push(entry({ ...envelope(), type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench', pipelineId: 'pipeline-1' }));
      }
      await sm.applyBatch(batch);
      await sm.recordSnapshotPoint();
      if (done % 100_000 === 0) process.stderr.write(`  built ${done} containers\n`);
    }
  } finally {
    await sm.close();
  }
  return (performance.now() - started) / 1000;
}

function procStatus(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(VmRSS|RssAnon|RssFile|VmHWM):\s+(\d+) kB/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]) / 1024;
  }
  return out;
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with --expose-gc');
  collect();
  collect();
}

/** In the child: one timed open and the memory it holds. Prints one JSON line. */
async function measure(dir: string): Promise<void> {
  gc();
  const before = process.memoryUsage();
  const beforeStatus = procStatus();
  const started = performance.now();
  const cpu = process.cpuUsage();
  const sm = await ScmStateMachine.open(dir);
  const loadSeconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const afterLoad = procStatus();
  gc();
  const after = process.memoryUsage();
  const status = procStatus();
  const count = sm.containerCount();
  // A few queries on the loaded state (ms).
  let t = performance.now();
  let sink = 0;
  for (let k = 0; k < 100_000; k++) sink += sm.getContainer(1 + ((k * 7919) % count))?.usedBytes ?? 0;
  const get100kMs = performance.now() - t;
  t = performance.now();
  for (let k = 0; k < 100; k++) sink += sm.listContainers(1 + ((k * 104_729) % count), 1_000).length;
  const list100x1kMs = performance.now() - t;
  t = performance.now();
  sink += sm.listContainers(1, 1_000, 'CLOSED').length; // scans every container: none is CLOSED
  const listScanMs = performance.now() - t;
  const result = {
    containers: count,
    retryCache: sm.retryCacheSize(),
    loadSeconds,
    loadCpuSeconds: (used.user + used.system) / 1e6,
    rssMiB: status['VmRSS'],
    rssAnonMiB: status['RssAnon'],
    peakRssMiB: status['VmHWM'],
    rssAnonBeforeGcMiB: afterLoad['RssAnon'],
    heapUsedMiB: after.heapUsed / 1048576,
    externalMiB: after.external / 1048576, // arrayBuffers (typed arrays) are part of it
    baselineRssAnonMiB: beforeStatus['RssAnon'],
    baselineHeapUsedMiB: before.heapUsed / 1048576,
    get100kMs,
    list100x1kMs,
    listScanMs,
    sink,
  };
  await sm.close();
  console.log(JSON.stringify(result));
}

const f1 = (n: number | undefined) => (n === undefined ? '?' : n.toFixed(1));

async function main(): Promise<void> {
  const opts = options();
  if (opts.measure) return measure(opts.db);
  if (opts.rebuild) await rm(join(opts.db, '..'), { recursive: true, force: true });
  if (!existsSync(opts.db)) {
    console.log(`building ${opts.containers} containers in ${opts.db} (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})…`);
    const seconds = await build(opts.db, opts.containers);
    console.log(`built in ${seconds.toFixed(1)} s`);
  } else {
    console.log(`reusing ${opts.db} (--rebuild to build it again)`);
  }
  const self = fileURLToPath(import.meta.url);
  console.log('| run | containers | retry cache | load s | load CPU s | RSS MiB | RssAnon MiB | peak RSS MiB | heap used MiB | external MiB | baseline RssAnon / heap MiB | 100k get ms | 100× list 1k ms | list scan ms | load avg 1m |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (let run = 1; run <= opts.runs; run++) {
    const load1 = loadavg()[0] as number;
    const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--measure', '--db', opts.db], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`measurement process failed (status ${child.status}): ${child.stdout}`);
    const r = JSON.parse(child.stdout.trim().split('\n').pop() as string) as Record<string, number>;
    console.log(
      `| ${run} | ${r['containers']} | ${r['retryCache']} | ${(r['loadSeconds'] as number).toFixed(2)} | ${(r['loadCpuSeconds'] as number).toFixed(2)} | ${f1(r['rssMiB'])} | ${f1(r['rssAnonMiB'])} | ${f1(r['peakRssMiB'])} | ` +
        `${f1(r['heapUsedMiB'])} | ${f1(r['externalMiB'])} | ${f1(r['baselineRssAnonMiB'])} / ${f1(r['baselineHeapUsedMiB'])} | ${f1(r['get100kMs'])} | ${f1(r['list100x1kMs'])} | ${f1(r['listScanMs'])} | ${load1.toFixed(2)} → ${(loadavg()[0] as number).toFixed(2)} |`,
    );
  }
}

await main();

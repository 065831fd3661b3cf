// Where a node's memory goes with a large state: the restart part's set-up (a bootstrapped 3-node
// cluster, N AllocateContainer entries generated into every node's Raft log and scm.db by
// bench/lib/generate-log.ts), then all three nodes started together and, once ready and settled,
// a breakdown per node read from outside the process:
//   - /proc/<pid>/status: VmRSS, RssAnon, RssFile, VmHWM;
//   - /proc/<pid>/smaps: anonymous resident memory by kind of mapping ([heap] = glibc's main
//     arena, 64 MiB-aligned reservations = glibc's per-thread arenas, the rest mostly V8's heap
//     pages and backing stores mmap'ed on their own);
//   - the node's own /prom: prom-client's V8 heap figures (total, used, per space) and external.
// With --variant, the same generated state is measured once per variant (each restarts all three
// nodes with its own node options and environment), so runtime settings compare on the same bytes.
// With --heap-snapshot, a heap snapshot of scm1 is written (node's --heapsnapshot-signal) and
// summarised by constructor (self size).
//
// This is the restart part (npm run bench -- --only restart) without its kill -9 and load rows:
// it takes a few minutes less and measures more.
//
// With --dist the nodes run the compiled dist/ (npm run build first), as the image runs them.
// With --load-seconds N, after the settle points each variant runs a closed-loop AllocateContainer
// load (--load-callers, 16 by default) for N seconds and is measured again as the load ends: what
// a leader and its followers hold under load, split the same way.
//
// Usage: npm run bench:rss -- [--containers N] [--settle SECONDS[,SECONDS…]] [--heap-snapshot] [--dist]
//          [--load-seconds N [--load-callers C]] [--variant 'label|--node-opt --other|ENV=value ENV2=value'] …
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchScmCluster } from './lib/scm-cluster.js';
import { generateAllocations } from './lib/generate-log.js';
import { memoryStatus } from './lib/proc.js';
import { anonByMapping } from './lib/smaps.js';
import { scrape, sumOf, type Sample } from './lib/prom.js';
import { pollUntil, leaderByStatus } from './parts/failover.js';
import { stopWithOneLog } from './parts/restart.js';
import { runLoad } from './lib/loadgen-process.js';

const MiB = 1024 * 1024;

interface Variant {
  readonly label: string;
  readonly nodeArgs: string[];
  readonly env: Record<string, string>;
}

function parseVariant(text: string): Variant {
  const [label = '', args = '', env = ''] = text.split('|');
  const envPairs: Record<string, string> = {};
  for (const pair of env.split(/\s+/).filter((s) => s !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--variant: environment entry ${JSON.stringify(pair)} is not NAME=value`);
    envPairs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { label: label || 'default', nodeArgs: args.split(/\s+/).filter((s) => s !== ''), env: envPairs };
}

interface NodeMemory {
  name: string;
  role: string;
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  peakMiB: number;
  brkHeapMiB: number;
  arenasMiB: number;
  otherAnonMiB: number;
  stacksMiB: number;
  v8HeapTotalMiB: number;
  v8HeapUsedMiB: number;
  v8ExternalMiB: number;
  spaces: Record<string, { usedMiB: number; totalMiB: number }>;
}

async function measureNode(cluster: BenchScmCluster, k: number, role: string): Promise<NodeMemory> {
  const h = cluster.harness;
  const pid = h.node(k).process?.pid;
  if (pid === undefined) throw new Error(`scm${k} is not running`);
  const status = memoryStatus(pid);
  if (status === undefined) throw new Error(`scm${k} (pid ${pid}) is gone`);
  const smaps = anonByMapping(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
  const samples: Sample[] = await scrape('127.0.0.1', h.node(k).ports.http, '/prom');
  const spaces: NodeMemory['spaces'] = {};
  for (const s of samples) {
    if (s.name === 'nodejs_heap_space_size_used_bytes' || s.name === 'nodejs_heap_space_size_total_bytes') {
      const space = s.labels['space'] ?? '?';
      const entry = (spaces[space] ??= { usedMiB: 0, totalMiB: 0 });
      if (s.name.endsWith('used_bytes')) entry.usedMiB = s.value / MiB;
      else entry.totalMiB = s.value / MiB;
    }
  }
  return {
    name: `scm${k}`,
    role,
    rssMiB: status.rssBytes / MiB,
    anonMiB: status.anonBytes / MiB,
    fileMiB: status.fileBytes / MiB,
    peakMiB: status.peakRssBytes / MiB,
    brkHeapMiB: smaps.brkHeap / 1024,
    arenasMiB: smaps.arenas / 1024,
    otherAnonMiB: smaps.other / 1024,
    stacksMiB: smaps.stacks / 1024,
    v8HeapTotalMiB: sumOf(samples, 'nodejs_heap_size_total_bytes') / MiB,
    v8HeapUsedMiB: sumOf(samples, 'nodejs_heap_size_used_bytes') / MiB,
    v8ExternalMiB: sumOf(samples, 'nodejs_external_memory_bytes') / MiB,
    spaces,
  };
}

/** Measures the three nodes and prints one table, then the V8 spaces of the first node and of the leader. */
async function printMeasurements(cluster: BenchScmCluster, all: readonly number[], when: string): Promise<void> {
  const leader = (await leaderByStatus(cluster, [...all])) ?? 0;
  const rows = [];
  for (const k of all) rows.push(await measureNode(cluster, k, k === leader ? 'leader' : 'follower'));
  console.log(`\n${when}:`);
  console.log('\n| node | RSS | anon | file | peak | glibc main arena ([heap]) | glibc thread arenas | other anon (V8 pages, large mmaps) | stacks | V8 heap total | V8 heap used | external |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const f = (x: number): string => x.toFixed(1);
    console.log(`| ${r.name} (${r.role}) | ${f(r.rssMiB)} | ${f(r.anonMiB)} | ${f(r.fileMiB)} | ${f(r.peakMiB)} | ${f(r.brkHeapMiB)} | ${f(r.arenasMiB)} | ${f(r.otherAnonMiB)} | ${f(r.stacksMiB)} | ${f(r.v8HeapTotalMiB)} | ${f(r.v8HeapUsedMiB)} | ${f(r.v8ExternalMiB)} |`);
  }
  for (const r of new Set([rows[0], rows.find((x) => x.role === 'leader')])) {
    if (r === undefined) continue;
    console.log(`\nV8 spaces of ${r.name} (${r.role}; used / total MiB): ${Object.entries(r.spaces).map(([s, v]) => `${s} ${v.usedMiB.toFixed(1)}/${v.totalMiB.toFixed(1)}`).join(', ')}`);
  }
}

/** Sums self sizes by constructor name over a .heapsnapshot file: the top `top` lines. */
function summariseHeapSnapshot(file: string, top: number): string[] {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snap.snapshot.meta.node_types[0];
  const byName = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] ?? '?';
    const name = type === 'object' || type === 'native' ? (snap.strings[snap.nodes[i + nameAt] as number] ?? '?') : `(${type})`;
    const size = snap.nodes[i + sizeAt] as number;
    total += size;
    const e = byName.get(name) ?? { bytes: 0, count: 0 };
    e.bytes += size;
    e.count++;
    byName.set(name, e);
  }
  const rows = [...byName.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top);
  return [
    `heap snapshot ${file}: ${(total / MiB).toFixed(1)} MiB in ${(snap.nodes.length / width).toLocaleString('en-US')} objects`,
    ...rows.map(([name, e]) => `  ${(e.bytes / MiB).toFixed(2).padStart(8)} MiB ${String(e.count).padStart(9)} × ${name.slice(0, 80)}`),
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      containers: { type: 'string', default: '1000000' },
      settle: { type: 'string', default: '10' },
      'heap-snapshot': { type: 'boolean', default: false },
      dist: { type: 'boolean', default: false },
      'load-seconds': { type: 'string', default: '0' },
      'load-callers': { type: 'string', default: '16' },
      variant: { type: 'string', multiple: true },
    },
  });
  const containers = Number(values.containers);
  if (!Number.isSafeInteger(containers) || containers < 1) throw new Error(`--containers needs a positive integer, got ${values.containers}`);
  // Seconds after ready at which to measure: one table per point.
  const settleAt = values.settle.split(',').map((t) => Number(t) * 1000);
  if (settleAt.some((t) => !Number.isFinite(t) || t < 0)) throw new Error(`--settle needs seconds (or a comma-separated list), got ${values.settle}`);
  const loadSeconds = Number(values['load-seconds']);
  const loadCallers = Number(values['load-callers']);
  if (!Number.isFinite(loadSeconds) || loadSeconds < 0) throw new Error(`--load-seconds needs a number of seconds, got ${values['load-seconds']}`);
  if (!Number.isSafeInteger(loadCallers) || loadCallers < 1) throw new Error(`--load-callers needs a positive integer, got ${values['load-callers']}`);
  const variants = (values.variant ?? ['default||']).map(parseVariant);
  const all = [1, 2, 3];
  const cluster = await BenchScmCluster.start({ compiled: values.dist });
  const h = cluster.harness;
  try {
    const dirs = await stopWithOneLog(cluster, all);
    console.log(`generating ${containers.toLocaleString('en-US')} allocations into each node…`);
    const generated = await generateAllocations(dirs, containers);
    console.log(`generated in ${generated.seconds.toFixed(1)} s`);

    for (const variant of variants) {
      h.nodeArgs = [...variant.nodeArgs, ...(values['heap-snapshot'] ? ['--heapsnapshot-signal=SIGUSR2'] : [])];
      for (const k of all) h.start(k, variant.env);
      const spawnAt = Date.now();
      await pollUntil('all three nodes ready', 900_000, 200, async () => ((await Promise.all(all.map((k) => cluster.ready(k)))).every(Boolean) ? true : undefined));
      console.log(`\n## ${variant.label} (${[...variant.nodeArgs, ...Object.entries(variant.env).map(([n, v]) => `${n}=${v}`)].join(' ') || 'as the node runs by default'}): ready after ${((Date.now() - spawnAt) / 1000).toFixed(1)} s`);
      const readyAt = Date.now();
      for (const at of settleAt) {
        await sleep(Math.max(0, readyAt + at - Date.now()));
        await printMeasurements(cluster, all, `${(at / 1000).toFixed(0)} s after ready`);
      }
      if (loadSeconds > 0) {
        const result = await runLoad(
          { target: await cluster.target(), callers: loadCallers, channels: 1, warmupMs: 0, measureMs: loadSeconds * 1000, recordAcks: false, callDeadlineMs: 60_000 },
          { onMeasured: () => printMeasurements(cluster, all, `at the end of ${loadSeconds} s of load from ${loadCallers} callers`) },
        );
        console.log(`\nload: ${Math.round(result.opsPerSec)} ops/s, ${result.errors} errors`);
      }
      if (values['heap-snapshot']) {
        const pid = h.node(1).process?.pid;
        if (pid !== undefined) {
          const root = process.cwd();
          const before = new Set(readdirSync(root).filter((f) => f.endsWith('.heapsnapshot')));
          process.kill(pid, 'SIGUSR2');
          const found = await pollUntil('the heap snapshot', 300_000, 500, async () => {
            const fresh = readdirSync(root).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
            const name = fresh[0];
            if (name === undefined) return undefined;
            // Written once its size stops changing.
            const size = statSync(join(root, name)).size;
            await sleep(2_000);
            return statSync(join(root, name)).size === size && size > 0 ? join(root, name) : undefined;
          });
          for (const line of summariseHeapSnapshot(found.value, 25)) console.log(line);
        }
      }
      await h.stopAllLeaderLast();
    }
  } finally {
    await cluster.destroy();
  }
}

await main();

// CPU profiles of the three nodes under closed-loop load: `npm run bench:profile -- --callers 1,64`.
// Starts the benchmark's 3-node cluster with `node --cpu-prof` on every node, runs one load row per
// caller count, stops the nodes (SIGTERM, so V8 writes the profiles) and prints, per row and per
// node, the top frames by self and inclusive time inside that row's measured window.
import { mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchScmCluster } from './lib/scm-cluster.js';
import { runLoad } from './lib/loadgen-process.js';
import { formatSummary, summarizeProfile } from './lib/cpuprofile.js';

const { values } = parseArgs({
  options: {
    callers: { type: 'string', default: '1,64' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    out: { type: 'string', default: join('/tmp', `scm-profile-${Date.now()}`) },
    top: { type: 'string', default: '25' },
    // Run the rows without --cpu-prof (to attach perf or watch /proc instead).
    'no-prof': { type: 'boolean', default: false },
  },
});
const callers = (values.callers ?? '1,64').split(',').map(Number);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const outDir = resolve(values.out as string);
const profDir = join(outDir, 'nodes');
mkdirSync(profDir, { recursive: true });

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

// Only the nodes profile (NODE_OPTIONS refuses --cpu-prof; the harness passes node options on).
const cluster = await BenchScmCluster.start({ nodeArgs: values['no-prof'] === true ? ['--perf-basic-prof'] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
console.log(`nodes: ${cluster.members().map((m) => `${m.name} pid ${m.pid}`).join(', ')}`);

const rows: Array<{ callers: number; fromUs: number; toUs: number; ops: number; opsPerSec: number; p50: number }> = [];
try {
  const target = await cluster.target();
  for (const n of callers) {
    let fromUs = 0;
    let toUs = 0;
    const result = await runLoad(
      { target, callers: n, channels: 1, warmupMs: warmup * 1000, measureMs: seconds * 1000, recordAcks: false, callDeadlineMs: 60_000 },
      { onMeasuring: () => void (fromUs = monotonicUs()), onMeasured: () => void (toUs = monotonicUs()) },
    );
    rows.push({ callers: n, fromUs, toUs, ops: result.ops, opsPerSec: result.opsPerSec, p50: result.latency.p50Ms });
    console.log(`${n} callers: ${result.opsPerSec.toFixed(0)} ops/s, p50 ${result.latency.p50Ms.toFixed(2)} ms`);
  }
  const leader = await cluster.leader();
  const roles = new Map(cluster.members().map((m, i) => [m.pid, i + 1 === leader ? `leader ${m.name}` : `follower ${m.name}`]));
  await cluster.harness.stopAllLeaderLast();
  for (const file of readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'))) {
    const pid = Number(file.split('.')[3]);
    const role = roles.get(pid) ?? `pid ${pid}`;
    for (const row of rows) {
      const summary = summarizeProfile(join(profDir, file), row.fromUs, row.toUs, Number(values.top));
      console.log(`\n${formatSummary(`${role}, ${row.callers} callers (${row.opsPerSec.toFixed(0)} ops/s, p50 ${row.p50.toFixed(2)} ms)`, summary, row.ops)}`);
    }
  }
  console.log(`\nprofiles: ${profDir}`);
} finally {
  await cluster.destroy();
}

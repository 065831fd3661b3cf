// Memory of a node's two large structures, phase by phase, in one process: the Raft log
// (RaftStorage.open: recovery and the per-entry index) and the state machine (ScmStateMachine.open),
// each over N entries, the way scm-node opens them at start-up. It complements bench/rss.bench.ts,
// which measures whole nodes from outside: here each phase's growth is read from inside, after a
// gc, split the way bench/rss.bench.ts splits a node (glibc's main arena, its thread arenas, other
// anonymous mappings: V8's pages and large backing stores) next to V8's own figures.
//
// The store (kept under the system temp dir, named by N, reused by later runs) is built with the
// real classes: a configuration entry, 3 datanodes and a RATIS/THREE pipeline, then N
// AllocateContainer entries from one client, appended with RaftStorage.append and applied with
// ScmStateMachine.applyBatch in batches of 1,000 with a snapshot point after each (as
// bench/lib/generate-log.ts does for the restart part). The leader's clock moves 1 ms every 10
// entries, so the retry cache ends full.
//
// Each measurement runs in a fresh `node --expose-gc` process. Usage:
//   npm run bench:rss-phases -- [--entries N] [--dir DIR] [--rebuild] [--runs K] [--node-arg=--v8-flag …]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeCommand, ScmStateMachine, type ScmCommand } from '../src/statemachine/index.js';
import { RaftStorage } from '../src/storage/raft-storage.js';
import type { LogEntry } from '../src/log-entry.js';
import { anonByMapping } from './lib/smaps.js';

const BATCH = 1_000;
const CLIENT_ID = 'client-bench-rss-phases';
const BASE_CLOCK = 1_700_000_000_000;
const MiB = 1024 * 1024;

async function build(dir: string, count: number): Promise<void> {
  const storage = RaftStorage.open(join(dir, 'group'));
  const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
  let index = 0;
  let callId = 0;
  let clock = BASE_CLOCK;
  const entry = (cmd: ScmCommand): LogEntry => ({ term: 1, index: ++index, payload: { kind: 'data', data: encodeCommand(cmd) } });
  const envelope = () => ({ clientId: CLIENT_ID, callId: ++callId, timestamp: clock });
  const apply = async (entries: LogEntry[]): Promise<void> => {
    const appended = storage.append(entries);
    await sm.applyBatch(entries);
    await sm.recordSnapshotPoint();
    await appended;
  };
  try {
    await storage.saveMeta(1, 'scm1');
    const setup: LogEntry[] = [{ term: 1, index: ++index, payload: { kind: 'config', peers: [{ id: 'scm1', address: '127.0.0.1:9894', priority: 0 }], listeners: [] } }];
    for (let i = 1; i <= 3; i++) {
      setup.push(entry({ ...envelope(), type: 'registerDatanode', uuid: `dn-${i}`, hostname: `host${i}`, ipAddress: `10.0.0.${i}`, ports: [{ name: 'RATIS', value: 9858 }] }));
    }
    setup.push(entry({ ...envelope(), type: 'createPipeline', pipelineId: 'pipeline-1', members: ['dn-1', 'dn-2', 'dn-3'], replicationType: 'RATIS', replicationFactor: 'THREE', leaderId: 'dn-1' }));
    await apply(setup);
    for (let done = 0; done < count; ) {
      const batch: LogEntry[] = [];
      for (; batch.length < BATCH && done < count; done++) {
        if (done % 10 === 0) clock++;
        batch.push(entry({ ...envelope(), type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench', pipelineId: 'pipeline-1' }));
      }
      await apply(batch);
      if (done % 100_000 === 0) process.stderr.write(`  built ${done}\n`);
    }
  } finally {
    await sm.close();
    await storage.close();
  }
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with --expose-gc');
  collect();
  collect();
}

interface Phase {
  phase: string;
  rss: number;
  anon: number;
  mainArena: number;
  threadArenas: number;
  otherAnon: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

function snapshot(phase: string): Phase {
  gc();
  const m = process.memoryUsage();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? 0) / 1024;
  const a = anonByMapping(readFileSync('/proc/self/smaps', 'utf8'));
  return {
    phase,
    rss: kb('VmRSS'),
    anon: kb('RssAnon'),
    mainArena: a.brkHeap / 1024,
    threadArenas: a.arenas / 1024,
    otherAnon: a.other / 1024,
    heapTotal: m.heapTotal / MiB,
    heapUsed: m.heapUsed / MiB,
    external: m.external / MiB,
    arrayBuffers: m.arrayBuffers / MiB,
  };
}

/** In the child: open the log, then the state machine, with a snapshot after each. */
async function measure(dir: string): Promise<void> {
  const phases: Phase[] = [snapshot('baseline')];
  const storage = RaftStorage.open(join(dir, 'group'));
  phases.push(snapshot(`log open (${storage.lastIndex().toLocaleString('en-US')} entries)`));
  const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
  phases.push(snapshot(`+ state machine open (${sm.containerCount().toLocaleString('en-US')} containers)`));
  // A node answers followers from the log: read the last 100,000 entries once, as a follower
  // catching up would make the leader do.
  const last = storage.lastIndex();
  for (let i = Math.max(storage.firstIndex(), last - 100_000); i <= last; i += 100) storage.entries(i, Math.min(last + 1, i + 100), 1 << 20);
  phases.push(snapshot('+ 100,000 entries read back'));
  phases.push({ ...snapshot('peak (VmHWM)'), rss: Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024 });
  await sm.close();
  await storage.close();
  console.log(JSON.stringify(phases));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      entries: { type: 'string', default: '1000000' },
      dir: { type: 'string' },
      rebuild: { type: 'boolean', default: false },
      measure: { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      'node-arg': { type: 'string', multiple: true },
    },
  });
  const entries = Number(values.entries);
  if (!Number.isSafeInteger(entries) || entries < 1) throw new Error(`--entries needs a positive integer, got ${values.entries}`);
  const dir = values.dir ?? join(tmpdir(), `scm-rss-phases-${entries}`);
  if (values.measure) return measure(dir);
  if (values.rebuild) await rm(dir, { recursive: true, force: true });
  if (!existsSync(join(dir, 'scm.db'))) {
    console.log(`building ${entries.toLocaleString('en-US')} entries in ${dir}…`);
    await build(dir, entries);
  } else {
    console.log(`reusing ${dir} (--rebuild to build it again)`);
  }
  const self = fileURLToPath(import.meta.url);
  for (let run = 1; run <= Number(values.runs); run++) {
    const child = spawnSync(process.execPath, [...(values['node-arg'] ?? []), '--expose-gc', '--import', 'tsx', self, '--measure', '--dir', dir, '--entries', String(entries)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`measurement process failed (status ${child.status}): ${child.stdout}`);
    const phases = JSON.parse(child.stdout.trim().split('\n').pop() as string) as Phase[];
    console.log(`\nrun ${run} (MiB, each after a gc):\n`);
    console.log('| phase | RSS | anon | glibc main arena | glibc thread arenas | other anon | V8 heap total | V8 heap used | external | of which ArrayBuffers |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    const f = (x: number): string => x.toFixed(1);
    for (const p of phases) {
      console.log(`| ${p.phase} | ${f(p.rss)} | ${f(p.anon)} | ${f(p.mainArena)} | ${f(p.threadArenas)} | ${f(p.otherAnon)} | ${f(p.heapTotal)} | ${f(p.heapUsed)} | ${f(p.external)} | ${f(p.arrayBuffers)} |`);
    }
  }
}

await main();

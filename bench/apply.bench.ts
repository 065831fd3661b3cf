// Apply benchmark: the CPU a node spends applying committed AllocateContainer entries to a real
// scm.db (classic-level in a temp dir), as every replica does for every allocation. Numbers only,
// no assertions.
//
// The entries are what 64 concurrent callers produce: batches of `--batch` AllocateContainer
// commands from as many clients (client-1..client-B, each with its own increasing call ids), the
// leader's clock moving `--clock-step` ms per entry, so that once `--warmup` batches have filled the
// retry cache's 60 s window every allocation also expires an old record (the steady state of a
// node under load). Every command is encoded before timing starts: encoding is the leader's cost at
// propose time, not apply's. Then `--batches` batches are applied one applyBatch call each, as the
// Raft driver applies one Ready, and timed with process.cpuUsage (user + system CPU of every thread,
// LevelDB's write thread included) and wall time. Each of `--runs` runs uses a fresh scm.db.
//
// The last line is the sha256 of scm.db's replicated content after the run (the state machine's
// digest()): the same workload must give the same digest before and after a change to apply.
//
// Usage: npm run bench:apply -- [--batches N] [--warmup N] [--batch B] [--clock-step MS] [--runs K]
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeCommand, ScmStateMachine, type ScmCommand } from '../src/statemachine/index.js';
import type { LogEntry } from '../src/log-entry.js';

const BASE_CLOCK = 1_700_000_000_000;

interface Options {
  readonly batches: number;
  readonly warmup: number;
  readonly batch: number;
  readonly clockStep: number;
  readonly runs: number;
}

function positiveInteger(text: string, what: string, min = 1): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${what} needs an integer ≥ ${min}, got ${text}`);
  return n;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      batches: { type: 'string', default: '1000' },
      warmup: { type: 'string', default: '1000' },
      batch: { type: 'string', default: '64' },
      'clock-step': { type: 'string', default: '1' },
      runs: { type: 'string', default: '3' },
    },
  });
  return {
    batches: positiveInteger(values.batches, 'batches'),
    warmup: positiveInteger(values.warmup, 'warmup', 0),
    batch: positiveInteger(values.batch, 'batch'),
    clockStep: positiveInteger(values['clock-step'], 'clock-step', 0),
    runs: positiveInteger(values.runs, 'runs'),
  };
}

/** The setup entries, then `batches` batches of allocations, all encoded. */
function generate(o: Options, batches: number): { setup: LogEntry[]; batches: LogEntry[][] } {
  let index = 0;
  let clock = BASE_CLOCK;
  const callIds = new Map<string, number>();
  const entry = (cmd: ScmCommand): LogEntry => ({ term: 1, index: ++index, payload: { kind: 'data', data: encodeCommand(cmd) } });
  const envelope = (clientId: string) => {
    const callId = (callIds.get(clientId) ?? 0) + 1;
    callIds.set(clientId, callId);
    return { clientId, callId, timestamp: clock };
  };
  const setup: LogEntry[] = [{ term: 1, index: ++index, payload: { kind: 'config', peers: [{ id: 'scm1', address: '127.0.0.1:9894', priority: 0 }], listeners: [] } }];
  for (let i = 1; i <= 3; i++) {
    setup.push(entry({ ...envelope('admin'), type: 'registerDatanode', uuid: `dn-${i}`, hostname: `host${i}`, ipAddress: `10.0.0.${i}`, ports: [{ name: 'RATIS', value: 9858 }] }));
  }
  setup.push(entry({ ...envelope('admin'), type: 'createPipeline', pipelineId: 'pipeline-1', members: ['dn-1', 'dn-2', 'dn-3'], replicationType: 'RATIS', replicationFactor: 'THREE', leaderId: 'dn-1' }));
  const out: LogEntry[][] = [];
  for (let b = 0; b < batches; b++) {
    const batch: LogEntry[] = [];
    for (let k = 0; k < o.batch; k++) {
      clock += o.clockStep;
      batch.push(entry({ ...envelope(`client-${k + 1}`), type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'om1', pipelineId: 'pipeline-1' }));
    }
    out.push(batch);
  }
  return { setup, batches: out };
}

interface RunResult {
  readonly cpuMicrosPerEntry: number;
  readonly wallMicrosPerEntry: number;
  readonly retryCache: number;
  readonly digest: string;
}

async function run(o: Options): Promise<RunResult> {
  const { setup, batches } = generate(o, o.warmup + o.batches);
  const dir = await mkdtemp(join(tmpdir(), 'scm-apply-bench-'));
  const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
  try {
    await sm.applyBatch(setup);
    for (let b = 0; b < o.warmup; b++) await sm.applyBatch(batches[b] as LogEntry[]);
    const started = performance.now();
    const cpu = process.cpuUsage();
    for (let b = o.warmup; b < batches.length; b++) await sm.applyBatch(batches[b] as LogEntry[]);
    const used = process.cpuUsage(cpu);
    const wall = performance.now() - started;
    const entries = o.batches * o.batch;
    return {
      cpuMicrosPerEntry: (used.user + used.system) / entries,
      wallMicrosPerEntry: (wall * 1000) / entries,
      retryCache: sm.retryCacheSize(),
      digest: await sm.digest(),
    };
  } finally {
    await sm.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const o = options();
  process.stdout.write(
    `apply bench: ${o.batches} batches of ${o.batch} AllocateContainer entries (after ${o.warmup} warm-up batches), clock +${o.clockStep} ms/entry, ${o.runs} runs, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  const results: RunResult[] = [];
  for (let r = 0; r < o.runs; r++) {
    const result = await run(o);
    results.push(result);
    process.stdout.write(
      `  run ${r + 1}: ${result.cpuMicrosPerEntry.toFixed(1)} µs CPU/entry, ${result.wallMicrosPerEntry.toFixed(1)} µs wall/entry, retry cache ${result.retryCache}\n`,
    );
  }
  const cpu = results.map((r) => r.cpuMicrosPerEntry).sort((a, b) => a - b);
  process.stdout.write(`median ${(cpu[Math.floor(cpu.length / 2)] as number).toFixed(1)} µs CPU per applied allocation (min ${(cpu[0] as number).toFixed(1)})\n`);
  const digests = new Set(results.map((r) => r.digest));
  process.stdout.write(`scm.db digest ${[...digests].join(' / ')}\n`);
}

await main();

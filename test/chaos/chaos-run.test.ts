// The bounded chaos run of `npm test`: a real 3-node cluster under the workload, every fault kind
// this machine can run once (in the seed's order), then the heal and every check. CHAOS_SEED
// replays a seed; otherwise each run draws one and prints it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChaos } from './run.js';
import { chainExists } from './netfilter.js';

test('chaos: every fault kind once on real processes; the history is linearizable and every post-heal check holds', { timeout: 420_000 }, async (t) => {
  const seed = process.env['CHAOS_SEED'] !== undefined ? Number(process.env['CHAOS_SEED']) : Math.floor(Math.random() * 2 ** 31);
  t.diagnostic(`seed ${seed} (replay: CHAOS_SEED=${seed} npm test -- chaos-run, or npm run chaos -- --seed ${seed} --minutes 0)`);
  const lines: string[] = [];
  const report = await runChaos({
    seed,
    durationMs: 0,
    clients: 4,
    thinkMs: 10,
    healBoundMs: 90_000,
    outDir: join(tmpdir(), 'scm-chaos-results'),
    log: (line) => lines.push(line),
  });
  for (const line of report.summary.split('\n')) t.diagnostic(line);
  for (const skipped of report.skippedKinds) t.diagnostic(`not run here: ${skipped}`);
  const context = `seed ${seed}\n${report.summary}\n${report.artifacts !== undefined ? `evidence: ${report.artifacts}\n` : ''}${lines.join('\n')}`;
  assert.deepEqual(report.violations, [], context);
  assert.deepEqual(new Set(report.faults.map((f) => f.kind)), new Set(report.kindsRun), `every kind ran\n${context}`);
  const crash = report.faults.find((f) => f.kind === 'crash-during-install');
  assert.match(crash?.detail ?? '', /killed at the failpoint/, `the follower died in the middle of its install\n${context}`);
  const isolated = report.faults.find((f) => f.kind === 'isolate-until-snapshot');
  assert.match(isolated?.detail ?? '', /installed a snapshot/, `the isolated follower caught up by installing a snapshot\n${context}`);
  const full = report.faults.find((f) => f.kind === 'disk-full');
  assert.match(full?.detail ?? '', /the node stopped \(exit code 1\), naming ENOSPC/, `a node whose disk is full stops and says why\n${context}`);
  assert.ok(report.history.some((e) => e.call.kind === 'allocate' && e.outcome.type === 'ok'), 'the workload got allocations through');
  if (report.chain !== undefined) assert.equal(chainExists(report.chain), false, `the run removed its iptables chain ${report.chain}`);
});

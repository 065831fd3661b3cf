// `npm run chaos -- --minutes N [--seed S] [--clients C] [--out DIR] [--kinds a,b] [--tls] [--keep-history]`: one
// chaos run on real processes (--tls: mutual TLS on every port); progress on stderr, the summary
// on stdout; exit 1 on a violation.
import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind } from './schedule.js';
import { runChaos } from './run.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    seed: { type: 'string' },
    clients: { type: 'string', default: '4' },
    out: { type: 'string', default: 'chaos-results' },
    kinds: { type: 'string' },
    'heal-bound': { type: 'string', default: '90' },
    tls: { type: 'boolean', default: false },
    'keep-history': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'npm run chaos -- [--minutes N] [--seed S] [--clients C] [--out DIR] [--kinds k1,k2] [--heal-bound SECONDS] [--tls] [--keep-history]\n' +
      '--keep-history: write history.json and final-table.json (and the logs) even when every check passes\n' +
      `fault kinds: ${FAULT_KINDS.join(', ')}\n`,
  );
  process.exit(0);
}

function number(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`--${name} must be a non-negative number, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

const seed = values.seed !== undefined ? Math.trunc(number('seed', values.seed)) : Math.floor(Math.random() * 2 ** 31);
let kinds: FaultKind[] | undefined;
if (values.kinds !== undefined) {
  kinds = values.kinds.split(',').map((k) => k.trim()) as FaultKind[];
  const unknown = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    process.stderr.write(`unknown fault kind(s) ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}\n`);
    process.exit(2);
  }
}

process.stderr.write(`chaos: seed ${seed} (replay with --seed ${seed}${values.tls ? ' --tls' : ''})\n`);
const report = await runChaos({
  seed,
  durationMs: number('minutes', values.minutes) * 60_000,
  clients: Math.max(1, Math.trunc(number('clients', values.clients))),
  thinkMs: 10,
  healBoundMs: number('heal-bound', values['heal-bound']) * 1_000,
  outDir: values.out,
  tls: values.tls,
  keepHistory: values['keep-history'],
  log: (line) => process.stderr.write(`${line}\n`),
  ...(kinds !== undefined ? { kinds } : {}),
});
process.stdout.write(`${report.summary}\n`);
if (report.violations.length === 0 && report.artifacts !== undefined) process.stdout.write(`history: ${report.artifacts}\n`);
if (report.violations.length > 0) {
  process.stdout.write(`evidence: ${report.artifacts ?? '(not written)'}\nreplay: npm run chaos -- --seed ${seed}${values.tls ? ' --tls' : ''}\n`);
  process.exit(1);
}

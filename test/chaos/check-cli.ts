// `npm run chaos:check -- DIR [--checker frontier|wgl]`: re-checks the linearizable part of a
// history a chaos run wrote (`--keep-history`, or any run with a violation), without running the
// cluster again. Prints the verdict, the check's time and the process's peak RSS; exit 1 on a
// violation, 2 when inconclusive.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { checkContainerHistory, recordedOrderProblem } from './container-model.js';
import { checkContainerHistoryWgl } from './container-model-wgl.js';
import type { HistoryEntry, ListedContainer } from './history.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    checker: { type: 'string', default: 'frontier' },
    help: { type: 'boolean', default: false },
  },
});

const CHECKERS = {
  // The check chaos runs use: the history in time order, keeping only what open calls leave undecided.
  frontier: checkContainerHistory,
  // The Wing–Gong search it replaced, kept as the reference (memory grows with the history).
  wgl: checkContainerHistoryWgl,
} as const;
const checker = CHECKERS[values.checker as keyof typeof CHECKERS] as (typeof CHECKERS)[keyof typeof CHECKERS] | undefined;

if (values.help || positionals.length !== 1 || checker === undefined) {
  process.stdout.write(
    'npm run chaos:check -- DIR [--checker frontier|wgl]\n' +
      '  DIR holds history.json, and final-table.json or the final reads in the history\n' +
      '  --checker: frontier (default, what chaos runs use) or wgl (the Wing–Gong search, the reference)\n',
  );
  process.exit(values.help ? 0 : 2);
}

/** The final table as the run read it: its pages are in the history as the `final` client's lists. */
function finalTableOf(history: readonly HistoryEntry[]): ListedContainer[] {
  return history.flatMap((e) => (e.client === 'final' && e.outcome.type === 'ok' ? (e.outcome.containers ?? []) : []));
}

const dir = positionals[0]!;
const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;
const history = JSON.parse(await readFile(join(dir, 'history.json'), 'utf8')) as HistoryEntry[];
const finalTable = existsSync(join(dir, 'final-table.json'))
  ? (JSON.parse(await readFile(join(dir, 'final-table.json'), 'utf8')) as ListedContainer[])
  : finalTableOf(history);
process.stderr.write(`${values.checker}: ${history.length} operations, ${finalTable.length} containers; peak RSS after loading ${mib(process.resourceUsage().maxRSS)}\n`);

const disorder = recordedOrderProblem(history);
if (disorder !== undefined) {
  process.stdout.write(`cannot be checked: ${disorder}\n`);
  process.exit(2);
}

const started = performance.now();
const result = checker(history, finalTable);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
process.stdout.write(
  `${result.ok ? 'linearizable' : result.inconclusive ? 'INCONCLUSIVE' : 'NOT linearizable'} in ${seconds} s, peak RSS ${mib(process.resourceUsage().maxRSS)}\n` +
    (result.ok ? '' : `${result.explanation}\n`),
);
process.exit(result.ok ? 0 : result.inconclusive ? 2 : 1);

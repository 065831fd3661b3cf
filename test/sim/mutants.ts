// npm run sim:mutants: switches each known bug back on (src/raft/mutants.ts), one at a time, and
// runs simulation seeds until one fails. Every mutant must be caught within the seed budget, or
// the simulation is not testing what it claims; the table printed is the one in the README.
//   npm run sim:mutants [-- --budget N] [--only NAME]
import { parseArgs } from 'node:util';
import { MUTANT_NAMES, setMutant, type MutantName } from '../../src/raft/mutants.js';
import { Simulation, SimulationFailure } from './simulator.js';

const { values } = parseArgs({ options: { budget: { type: 'string', default: '500' }, only: { type: 'string' } }, strict: true });
const budget = Number(values.budget);
if (!Number.isSafeInteger(budget) || budget < 1) throw new Error(`--budget must be a positive integer, got ${values.budget}`);
const names = values.only === undefined ? MUTANT_NAMES : MUTANT_NAMES.filter((n) => n === values.only);
if (names.length === 0) throw new Error(`unknown mutant ${values.only}; one of ${MUTANT_NAMES.join(', ')}`);

interface Caught {
  readonly name: MutantName;
  readonly runs: number;
  readonly seed: number;
  readonly nodes: number;
  readonly reason: string;
}

const rows: (Caught | { name: MutantName; runs: number; seed: undefined })[] = [];
for (const name of names) {
  setMutant(name);
  const started = Date.now();
  let found: Caught | undefined;
  let runs = 0;
  // Seeds in order, alternating 3 and 5 servers, as npm test runs them.
  for (let seed = 1; seed <= budget && found === undefined; seed++) {
    for (const nodes of [3, 5]) {
      runs++;
      try {
        await new Simulation({ seed, nodes, leaseRead: seed % 4 === 3 }).run();
      } catch (err) {
        const reason = err instanceof SimulationFailure ? (err.message.split('\n')[0] ?? '') : String(err);
        found = { name, runs, seed, nodes, reason: reason.replace(/^simulation seed \d+ failed: /, '').slice(0, 160) };
        break;
      }
    }
  }
  setMutant(undefined);
  rows.push(found ?? { name, runs, seed: undefined });
  console.error(`${name}: ${found === undefined ? `NOT caught in ${runs} runs` : `caught by seed ${found.seed} (${found.nodes} nodes) after ${runs} runs`} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

console.log('\n| mutant (bug put back) | runs until caught | first failing seed | what the simulation saw |');
console.log('|---|---|---|---|');
for (const r of rows) {
  if (r.seed === undefined) console.log(`| \`${r.name}\` | not caught in ${r.runs} | – | – |`);
  else console.log(`| \`${r.name}\` | ${r.runs} | ${r.seed} (${(r as Caught).nodes} nodes) | ${(r as Caught).reason.replace(/\|/g, '\\|')} |`);
}
const missed = rows.filter((r) => r.seed === undefined).length;
process.exitCode = missed === 0 ? 0 : 1;

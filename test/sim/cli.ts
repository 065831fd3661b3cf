// Runs the deterministic simulation outside the test suite.
//   npm run sim -- --seeds N [--from S] [--nodes 3|5]   run N seeds (both sizes unless --nodes)
//   npm run sim -- --seed S [--nodes 3|5]               replay one seed, printing its trace
//   --mutant NAME                                       with one known bug switched back on
import { parseArgs } from 'node:util';
import { setMutant, MUTANT_NAMES, type MutantName } from '../../src/raft/mutants.js';
import { Simulation, SimulationFailure } from './simulator.js';

const USAGE = 'usage: npm run sim -- --seeds N [--from S] [--nodes 3|5] | --seed S [--nodes 3|5] [--fault-ms MS] [--mutant NAME]';

function int(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { seed: { type: 'string' }, seeds: { type: 'string' }, from: { type: 'string' }, nodes: { type: 'string' }, 'fault-ms': { type: 'string' }, mutant: { type: 'string' } },
      strict: true,
    }));
  } catch (err) {
    console.error(`sim: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const sizes = values.nodes !== undefined ? [int(values.nodes, 'nodes', 3)] : [3, 5];
  const faultMs = int(values['fault-ms'], 'fault-ms', 2000);
  if (values.mutant !== undefined) {
    if (!(MUTANT_NAMES as readonly string[]).includes(values.mutant)) {
      console.error(`sim: unknown mutant ${JSON.stringify(values.mutant)}; one of ${MUTANT_NAMES.join(', ')}`);
      return 2;
    }
    setMutant(values.mutant as MutantName);
  }
  if (values.seed !== undefined) {
    const seed = int(values.seed, 'seed', 0);
    for (const nodes of sizes) {
      try {
        const r = await new Simulation({ seed, nodes, faultMs, leaseRead: seed % 4 === 3, traceSize: 600 }).run();
        console.log(`seed ${seed} (${nodes} nodes): ok ${JSON.stringify(r)}`);
      } catch (err) {
        console.error(err instanceof SimulationFailure ? err.message : err);
        return 1;
      }
    }
    return 0;
  }
  const count = int(values.seeds, 'seeds', 100);
  const from = int(values.from, 'from', 1);
  let failures = 0;
  const started = Date.now();
  for (let seed = from; seed < from + count; seed++) {
    for (const nodes of sizes) {
      try {
        await new Simulation({ seed, nodes, faultMs, leaseRead: seed % 4 === 3 }).run();
      } catch (err) {
        failures++;
        console.error(err instanceof SimulationFailure ? err.message : err);
        console.error('');
      }
    }
  }
  const runs = count * sizes.length;
  console.log(`${runs - failures} passed, ${failures} failed (${runs} simulations, ${((Date.now() - started) / 1000).toFixed(1)}s)`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();

// Runs the deterministic Raft simulation outside the test suite.
//   npm run sim -- --seeds N [--from S] [--nodes 3|5]   run N seeds (both sizes unless --nodes)
//   npm run sim -- --seed S [--nodes 3|5]               replay one seed, printing its trace
import { Simulation, SimulationFailure } from './simulator.js';

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
    out.set(a.slice(2), v);
    i++;
  }
  for (const k of out.keys()) {
    if (!['seed', 'seeds', 'from', 'nodes', 'fault-ms'].includes(k)) throw new Error(`unknown option --${k}`);
  }
  return out;
}

function int(args: Map<string, string>, name: string, fallback: number): number {
  const v = args.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

function main(): number {
  let args: Map<string, string>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`sim: ${(err as Error).message}\nusage: npm run sim -- --seeds N [--from S] [--nodes 3|5] | --seed S [--nodes 3|5]`);
    return 2;
  }
  const sizes = args.has('nodes') ? [int(args, 'nodes', 3)] : [3, 5];
  const faultMs = int(args, 'fault-ms', 2000);
  if (args.has('seed')) {
    const seed = int(args, 'seed', 0);
    for (const nodes of sizes) {
      try {
        const r = new Simulation({ seed, nodes, faultMs, leaseRead: seed % 4 === 3, traceSize: 400 }).run();
        console.log(`seed ${seed} (${nodes} nodes): ok ${JSON.stringify(r)}`);
      } catch (err) {
        console.error(err instanceof SimulationFailure ? err.message : err);
        return 1;
      }
    }
    return 0;
  }
  const count = int(args, 'seeds', 100);
  const from = int(args, 'from', 1);
  let failures = 0;
  const started = Date.now();
  for (let seed = from; seed < from + count; seed++) {
    for (const nodes of sizes) {
      try {
        new Simulation({ seed, nodes, faultMs, leaseRead: seed % 4 === 3 }).run();
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

process.exitCode = main();

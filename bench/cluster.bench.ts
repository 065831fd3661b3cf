// Allocations per second and latency through a real 3-node SCM cluster of separate processes on
// loopback: every allocation is a Raft entry fsynced on a majority and applied before it is
// acknowledged. `npm run bench:cluster -- --count N` (default 3000 per concurrency level),
// `--concurrency 1,64` (default 1,16,64,256), `--tls` for mutual TLS on every port (clients, Raft
// and InterSCM), with the certificates `scm cluster --tls` makes.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { TestCluster } from '../test/integration/harness.js';

const usage = 'usage: bench:cluster [--count N] [--concurrency C[,C…]] [--tls]';
let values: { count?: string; concurrency?: string; tls?: boolean };
try {
  ({ values } = parseArgs({ options: { count: { type: 'string' }, concurrency: { type: 'string' }, tls: { type: 'boolean' } } }));
} catch (err) {
  console.error(`${(err as Error).message}\n${usage}`);
  process.exit(2);
}
const count = Number(values.count ?? 3000);
const levels = (values.concurrency ?? '1,16,64,256').split(',').map(Number);
if (!Number.isSafeInteger(count) || count <= 0 || !levels.every((c) => Number.isSafeInteger(c) && c > 0)) {
  console.error(usage);
  process.exit(2);
}
const tls = values.tls === true;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const cluster = await TestCluster.create(3, {}, { tls });
try {
  await cluster.bootstrapAll();
  const admin = cluster.client(cluster.allClientAddresses(), 30_000);
  for (let i = 0; i < 3; i++) {
    await admin.registerDatanode({ uuid: `00000000-0000-4000-8000-00000000003${i}`, hostname: `dn${i}`, ipAddress: `10.0.3.${i}`, ports: [] });
  }
  await admin.createPipeline({ replicationType: 'RATIS', replicationFactor: 'THREE', memberIds: [] });
  const leader = cluster.clientAddress(await cluster.leaderIndex());
  console.log(`3-node cluster${tls ? ' with mutual TLS' : ' in plaintext'}, ${count} allocations per row, clients talk to the leader (${leader})`);
  console.log('concurrency  allocations/s  p50 ms  p99 ms');
  for (const concurrency of levels) {
    const clients = Array.from({ length: Math.min(concurrency, 16) }, () => cluster.client([leader], 60_000));
    const latencies: number[] = [];
    let issued = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        const client = clients[w % clients.length]!;
        while (issued < count) {
          issued++;
          const t0 = performance.now();
          await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' });
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(
      `${String(concurrency).padEnd(12)} ${String(Math.round(latencies.length / seconds)).padEnd(14)} ${percentile(latencies, 50).toFixed(1).padEnd(7)} ${percentile(latencies, 99).toFixed(1)}`,
    );
  }
} finally {
  await cluster.destroy();
}

// Reserves a block of loopback ports for one test cluster, across every test process of a run.
//
// `npm test` runs test files in parallel processes, and a cluster binds its nodes' ports one node at
// a time, seconds apart. Checking "free right now" is therefore not enough: two clusters could pick
// overlapping blocks and a bootstrapping node would then talk to a stranger's node (CI saw exactly
// that: "clusterID mismatch ... peer scm3 reports CID-..."). Each block is claimed with an exclusive
// lock file naming the holder's pid; a lock whose holder is gone is taken over.
import { createServer } from 'node:net';
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localNodePorts } from '../../src/cli/local-cluster.js';
import { isProcessAlive } from '../../src/storage/in-use-lock.js';

/** Wide enough for 9 nodes at 100 ports apart (localNodePorts). */
const BLOCK_WIDTH = 1_000;
/** Below Linux's ephemeral range (32768+): a port there can be taken by any outbound connection
 *  while a killed node is down, and then the node could not restart on it. */
const FIRST_BASE = 20_000;
const BLOCKS = 12;
const LOCK_DIR = join(tmpdir(), 'scm-ha-test-ports');

export interface PortBlock {
  readonly base: number;
  release(): void;
}

const held = new Set<string>();
process.on('exit', () => {
  for (const path of held) unlinkQuietly(path);
});

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Claims the lock file for a block; false if a live process holds it. */
function claim(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      // removed between our open and read: try the next block rather than guess
    }
    if (!Number.isInteger(holder) || isProcessAlive(holder)) return false;
    // Left by a killed test process. Two processes taking the same stale lock over at the same
    // instant could both win; that needs a crashed run and a 1-in-12 pick, and costs one red run.
    unlinkQuietly(path);
  }
  return false;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port the kernel picks from its ephemeral range (32768+), free when returned: for servers
 *  outside a cluster's block, such as Prometheus or a fake scrape target. */
export async function ephemeralPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A block whose node ports are free and which no other live test process has claimed. */
export async function reservePortBlock(nodes: number): Promise<PortBlock> {
  if (nodes * 100 > BLOCK_WIDTH) throw new Error(`a port block holds at most ${BLOCK_WIDTH / 100} nodes, asked for ${nodes}`);
  mkdirSync(LOCK_DIR, { recursive: true });
  const order = Array.from({ length: BLOCKS }, (_, i) => i).sort(() => Math.random() - 0.5);
  for (let round = 0; round < 20; round++) {
    for (const i of order) {
      const base = FIRST_BASE + i * BLOCK_WIDTH;
      const lock = join(LOCK_DIR, `${base}.lock`);
      if (!claim(lock)) continue;
      const ports = Array.from({ length: nodes }, (_, k) => localNodePorts(k + 1, base)).flatMap((p) => [p.client, p.ratis, p.grpc, p.http]);
      if ((await Promise.all(ports.map(portFree))).every(Boolean)) {
        held.add(lock);
        return {
          base,
          release: () => {
            held.delete(lock);
            unlinkQuietly(lock);
          },
        };
      }
      unlinkQuietly(lock);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`no free block of ${nodes} node ports in ${FIRST_BASE}-${FIRST_BASE + BLOCKS * BLOCK_WIDTH - 1}`);
}

// `scm cluster` (what `npm start` runs), as real processes: a quorum that reports its ports and
// answers admin commands; a second one on the same data or ports refused with the reason; a stop on
// Ctrl-C or SIGTERM (also while starting); a second start on the same data that brings every node
// up together with the data intact; nodes that stop by themselves when `scm cluster` is killed
// outright; a node that cannot start ending the start with its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ScmClient } from '../../src/client/scm-client.js';
import { localNodePorts } from '../../src/cli/local-cluster.js';
import { reservePortBlock, type PortBlock } from './port-block.js';
import { allocate, openPipeline } from './workload.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface ClusterRun {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  /** Resolves once the output matches, rejects if the process exits first or `timeoutMs` passes. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
}

/** `scm cluster` in a process group of its own, as a terminal runs a foreground command. */
function startCluster(dir: string, basePort: number): ClusterRun {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'cluster', '--dir', dir, '--base-port', String(basePort)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => out,
    waitFor: async (pattern, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out)) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`scm cluster exited before printing ${String(pattern)}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`scm cluster did not print ${String(pattern)} within ${timeoutMs} ms:\n${out}`);
        await sleep(100);
      }
    },
  };
}

async function portsFree(basePort: number, nodes = 3): Promise<void> {
  for (let k = 1; k <= nodes; k++) {
    const p = localNodePorts(k, basePort);
    for (const port of [p.client, p.ratis, p.grpc, p.http]) {
      await new Promise<void>((resolve, reject) => {
        const s = createServer();
        s.once('error', (err) => reject(new Error(`port ${port} still in use after stop: ${err.message}`)));
        s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
      });
    }
  }
}

/** The pids in the nodes' in_use.lock files: the node processes holding each node's storage. */
function lockHolders(dir: string): number[] {
  const pids: number[] = [];
  for (let k = 1; k <= 3; k++) {
    const ratis = join(dir, `scm${k}`, 'ratis');
    if (!existsSync(ratis)) continue;
    for (const group of readdirSafe(ratis)) {
      const lock = join(ratis, group, 'in_use.lock');
      if (existsSync(lock)) pids.push((JSON.parse(readFileSync(lock, 'utf8')) as { pid: number }).pid);
    }
  }
  return pids;
}

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

async function clusterTest(body: (dir: string, block: PortBlock, runs: ClusterRun[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'scm-cluster-'));
  const block = await reservePortBlock(3);
  const runs: ClusterRun[] = [];
  try {
    await body(dir, block, runs);
  } catch (err) {
    (err as Error).message += `\n${runs.map((r, i) => `--- scm cluster #${i + 1} ---\n${r.output()}`).join('\n')}`;
    throw err;
  } finally {
    for (const run of runs) if (run.child.exitCode === null && run.child.pid !== undefined && alive(run.child.pid)) run.child.kill('SIGKILL');
    for (const pid of lockHolders(dir)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    block.release();
    await rm(dir, { recursive: true, force: true });
  }
}

test('scm cluster: a quorum; a second one refused with the reason; Ctrl-C stops all in order; a restart on the data brings it back', { timeout: 300_000 }, async () => {
  await clusterTest(async (dir, block, runs) => {
    const basePort = block.base;
    const first = startCluster(dir, basePort);
    runs.push(first);
    await first.waitFor(/SCM quorum of 3 running/, 120_000);
    // The port table follows that line; it may not have been read yet.
    const last = localNodePorts(3, basePort);
    await first.waitFor(new RegExp(`${last.nodeId}\\s+${last.client}\\s+${last.ratis}`), 10_000);
    for (let k = 1; k <= 3; k++) {
      const p = localNodePorts(k, basePort);
      assert.match(first.output(), new RegExp(`${p.nodeId}\\s+${p.client}\\s+${p.ratis}\\s+${p.grpc}\\s+${p.http}`));
    }
    assert.match(first.output(), new RegExp(`try: scm admin scm roles --config ${join(dir, 'ozone-site.xml')}`));
    const client = new ScmClient({ addresses: [0, 1, 2].map((i) => `127.0.0.1:${basePort + 100 * i}`), deadlineMs: 20_000 });
    try {
      const roles = await client.getScmRoles();
      assert.deepEqual(roles.map((r) => r.role).sort(), ['FOLLOWER', 'FOLLOWER', 'LEADER']);
      await openPipeline(client, 'THREE', 'picked');
      await allocate(client, 3, { owner: 'restart' });
    } finally {
      client.close();
    }

    // The same data while it runs: refused before anything starts, saying why.
    const again = startCluster(dir, basePort);
    runs.push(again);
    assert.equal(await again.exited, 1, again.output());
    assert.match(again.output(), /^scm cluster: scm1's data in .* is in use \(storage directory .* is in use by pid \d+ .*in_use\.lock\): is `scm cluster` already running on .*\? Stop it first\n$/);
    assert.doesNotMatch(again.output(), /SCM quorum of 3 running|exited \(code/);
    // Other data, the same ports: refused too.
    const otherDir = await mkdtemp(join(tmpdir(), 'scm-cluster-other-'));
    try {
      const elsewhere = startCluster(otherDir, basePort);
      runs.push(elsewhere);
      assert.equal(await elsewhere.exited, 1, elsewhere.output());
      assert.match(elsewhere.output(), new RegExp(`scm cluster: port ${basePort} \\(scm1 client\\) on 127\\.0\\.0\\.1 is in use`));
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
    const stillServing = new ScmClient({ addresses: [`127.0.0.1:${basePort}`], deadlineMs: 20_000 });
    assert.equal((await stillServing.getScmRoles()).length, 3, 'the first cluster is untouched');
    stillServing.close();

    // Ctrl-C in a terminal: SIGINT to the whole foreground process group.
    process.kill(-(first.child.pid ?? 0), 'SIGINT');
    assert.equal(await first.exited, 0, first.output());
    await portsFree(basePort);
    assert.deepEqual(lockHolders(dir), [], 'every node released its storage');
    for (let k = 1; k <= 3; k++) {
      const log = readFileSync(join(dir, `scm${k}`, 'scm.log'), 'utf8');
      assert.match(log, /"msg":"SCM stopped"/, `scm${k} stopped in order`);
      assert.doesNotMatch(log, /stop_abandoned/, `scm${k} saw one stop request`);
    }

    // A second start on the same data: every node at once, the data intact.
    const restarted = startCluster(dir, basePort);
    runs.push(restarted);
    await restarted.waitFor(/SCM quorum of 3 running/, 90_000);
    assert.match(restarted.output(), /^found clusterID CID-[0-9a-f-]+ in .*\nstarting scm1, scm2, scm3 together/);
    const after = new ScmClient({ addresses: [`127.0.0.1:${basePort}`], deadlineMs: 20_000 });
    try {
      assert.deepEqual((await after.listContainers({ startId: 0, count: 10 })).map((c) => c.containerId), [1, 2, 3]);
    } finally {
      after.close();
    }

    // Killed outright, it cannot stop its nodes: they notice (stdin closes) and stop themselves.
    const holders = lockHolders(dir);
    assert.equal(holders.length, 3);
    restarted.child.kill('SIGKILL');
    await restarted.exited;
    const deadline = Date.now() + 30_000;
    while (holders.some(alive) && Date.now() < deadline) await sleep(200);
    assert.deepEqual(holders.filter(alive), [], 'no node outlives a killed scm cluster');
    await portsFree(basePort);
  });
});

test('scm cluster: SIGTERM while starting stops every node; a node that cannot start ends the start with its reason', { timeout: 240_000 }, async () => {
  await clusterTest(async (dir, block, runs) => {
    const basePort = block.base;
    const starting = startCluster(dir, basePort);
    runs.push(starting);
    await starting.waitFor(/starting scm1/, 60_000);
    starting.child.kill('SIGTERM');
    assert.equal(await starting.exited, 0, starting.output());
    assert.match(starting.output(), /SIGTERM: stopping the local SCM quorum/);
    assert.doesNotMatch(starting.output(), /SCM quorum of 3 running/);
    await portsFree(basePort);
    assert.deepEqual(lockHolders(dir).filter(alive), []);

    // scm1 has data now; damage it so that scm1 cannot start.
    const ratis = join(dir, 'scm1', 'ratis');
    const group = readdirSync(ratis).find((name) => /^[0-9a-f-]{36}$/.test(name));
    assert.ok(group !== undefined, `a Raft group directory under ${ratis}`);
    writeFileSync(join(ratis, group, 'current', 'raft-meta'), 'term=abc\nvotedFor=\n');
    const failing = startCluster(dir, basePort);
    runs.push(failing);
    assert.equal(await failing.exited, 1, failing.output());
    assert.match(
      failing.output(),
      /scm cluster: scm1 exited \(code 1\): cannot start: .*raft-meta: term "abc" is not a non-negative integer\. .*`scm repair raft-meta .*; see .*scm1\/scm\.log while the quorum was starting\n/,
    );
    await portsFree(basePort);
  });
});

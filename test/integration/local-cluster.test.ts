// `scm cluster` (what `npm start` runs): a real local quorum of separate processes that reports its
// ports, answers admin commands, and stops every process on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScmClient } from '../../src/client/scm-client.js';
import { localNodePorts } from '../../src/cli/local-cluster.js';
import { reservePortBlock } from './port-block.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('scm cluster starts a 3-node quorum, prints its ports and stops all of it on SIGTERM', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scm-cluster-'));
  const block = await reservePortBlock(3);
  const basePort = block.base;
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'cluster', '--dir', dir, '--base-port', String(basePort)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    const deadline = Date.now() + 90_000;
    while (!out.includes('SCM quorum of 3 running') && Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(out, /SCM quorum of 3 running/, out);
    for (let k = 1; k <= 3; k++) {
      const p = localNodePorts(k, basePort);
      assert.match(out, new RegExp(`${p.nodeId}\\s+${p.client}\\s+${p.ratis}\\s+${p.grpc}\\s+${p.http}`));
    }
    const client = new ScmClient({ addresses: [`127.0.0.1:${basePort}`], deadlineMs: 10_000 });
    const roles = await client.getScmRoles();
    client.close();
    assert.deepEqual(roles.map((r) => r.role).sort(), ['FOLLOWER', 'FOLLOWER', 'LEADER']);

    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    // Every node process is gone: their ports are free again.
    for (let k = 1; k <= 3; k++) {
      const port = localNodePorts(k, basePort).client;
      await new Promise<void>((resolve, reject) => {
        const s = createServer();
        s.once('error', (err) => reject(new Error(`port ${port} still in use after stop: ${err.message}`)));
        s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
      });
    }
  } finally {
    if (child.exitCode === null && child.pid !== undefined && alive(child.pid)) child.kill('SIGKILL');
    block.release();
    await rm(dir, { recursive: true, force: true });
  }
});

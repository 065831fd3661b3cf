// `scm admin scm roles` and /status on real processes: rows in node id order whatever order the
// nodes joined in, the same role names in both, "-" for a node that does not answer, and a
// transfer to the current leader that says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/run.js';
import { initNode } from '../../src/server/node-setup.js';
import { bootstrapFromRunningScms } from '../../src/cli/bootstrap.js';
import { TestCluster } from './harness.js';

async function scm(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {} });
  return { code, out, err };
}

async function statusRole(cluster: TestCluster, k: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/status`);
  return ((await response.json()) as { role: string }).role;
}

test('roles: node id order, the names /status uses, "-" for a node that is down; a transfer to the leader says so', { timeout: 240_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    // scm3 joins before scm2, so the configuration lists scm1, scm3, scm2.
    await initNode(cluster.config(1));
    cluster.start(1);
    await cluster.waitFor('scm1 to lead', 60_000, async () => (await cluster.client([cluster.clientAddress(1)]).getClusterInfo()).leaderId !== '');
    await bootstrapFromRunningScms(cluster.config(3), 30_000);
    cluster.start(3);
    await cluster.waitForVoters(2);
    await bootstrapFromRunningScms(cluster.config(2), 30_000);
    cluster.start(2);
    await cluster.waitForVoters(3);
    assert.deepEqual(
      (await cluster.client([cluster.clientAddress(1)]).getClusterInfo()).members.map((m) => m.nodeId),
      ['scm1', 'scm3', 'scm2'],
      'the configuration order this test is about',
    );

    const roles = await scm('admin', 'scm', 'roles', '--config', cluster.siteXml, '-o', 'json');
    assert.equal(roles.code, 0, roles.err);
    const rows = JSON.parse(roles.out) as { nodeId: string; role: string }[];
    assert.deepEqual(rows.map((r) => r.nodeId), ['scm1', 'scm2', 'scm3']);
    for (const [i, row] of rows.entries()) assert.equal(await statusRole(cluster, i + 1), row.role, `${row.nodeId}: /status and the CLI name the role alike`);
    assert.deepEqual(rows.map((r) => r.role).sort(), ['FOLLOWER', 'FOLLOWER', 'LEADER']);

    const leader = rows.find((r) => r.role === 'LEADER')?.nodeId ?? '';
    const toLeader = await scm('admin', 'scm', 'transfer', '-n', leader, '--config', cluster.siteXml);
    assert.equal(toLeader.code, 0, toLeader.err);
    assert.equal(toLeader.out, `${leader} is already the leader; nothing to transfer.\n`);

    const follower = rows.find((r) => r.role === 'FOLLOWER')?.nodeId ?? '';
    const k = Number(follower.slice(3));
    await cluster.kill(k, 'SIGTERM');
    const table = await scm('admin', 'scm', 'roles', '--config', cluster.siteXml);
    assert.equal(table.code, 0, table.err);
    const lines = table.out.trim().split('\n');
    assert.deepEqual(lines.slice(1).map((line) => line.split(/\s+/)[0]), ['scm1', 'scm2', 'scm3']);
    assert.match(lines[k] ?? '', new RegExp(`^${follower}\\s+\\S+\\s+\\S+\\s+UNREACHABLE\\s+-\\s+-\\s+-$`), table.out);
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(20)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});

// bin/scm-step-down.mjs (the Kubernetes preStop hook) against a real 3-node quorum: it reads the
// real /status, runs the real `scm admin scm transfer`, and leadership moves before the old leader
// is stopped. Also with mutual TLS and HTTPS only, as the secure Kubernetes variant runs it: /status
// over HTTPS checked against the CA, the transfer as the administrator the configuration names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function stepDown(cluster: TestCluster, k: number, bin: string, env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const status =
    cluster.tls === undefined
      ? ['--http', `127.0.0.1:${cluster.node(k).ports.http}`]
      : ['--https', `127.0.0.1:${cluster.node(k).ports.https}`, '--ca', cluster.tls.ca.cert, '--servername', 'localhost'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/scm-step-down.mjs'), ...status, '--scm', cluster.allClientAddresses().join(','), '--timeout', '20'], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, ...env },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

test('scm-step-down on a live quorum: the leader hands over to a follower, a follower has nothing to do', { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3);
  // `scm` on PATH, as in the image: this checkout's CLI through tsx.
  const bin = mkdtempSync(join(tmpdir(), 'scm-bin-'));
  writeFileSync(join(bin, 'scm'), `#!/bin/sh\nexec "${process.execPath}" --import tsx "${join(ROOT, 'src/cli/main.ts')}" "$@"\n`);
  chmodSync(join(bin, 'scm'), 0o755);
  try {
    await cluster.bootstrapAll();
    const client = cluster.client(cluster.allClientAddresses(), 30_000);
    const leader = await cluster.leaderIndex();

    const handOver = await stepDown(cluster, leader, bin);
    assert.equal(handOver.code, 0, handOver.output);
    const named = /transferring the leadership to (scm\d)/.exec(handOver.output)?.[1];
    assert.ok(named !== undefined && named !== `scm${leader}`, handOver.output);
    assert.match(handOver.output, new RegExp(`Leadership transferred from scm${leader} to ${named}\\.`));
    assert.equal((await client.getClusterInfo()).leaderId, named);

    const again = await stepDown(cluster, leader, bin);
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, new RegExp(`scm${leader} is FOLLOWER \\(leader ${named}\\): nothing to hand over`));

    // What the kubelet does next: SIGTERM. The quorum keeps its leader and keeps committing.
    assert.equal(await cluster.kill(leader, 'SIGTERM'), 0);
    assert.equal((await client.getClusterInfo()).leaderId, named);
    await client.registerDatanode({ uuid: '00000000-0000-4000-8000-0000000000d1', hostname: 'dn1', ipAddress: '10.0.0.1', ports: [] });
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(25)}`;
    throw err;
  } finally {
    await cluster.destroy();
    rmSync(bin, { recursive: true, force: true });
  }
});

test('scm-step-down on a live quorum with mutual TLS and HTTPS only: /status over HTTPS with the CA, the transfer as the administrator; a non-administrator identity fails the hook', { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3, {}, { tls: true });
  const bin = mkdtempSync(join(tmpdir(), 'scm-bin-'));
  // bash: dash would drop the OZONE-SITE.XML_ variables (not shell identifiers) from what it runs.
  writeFileSync(join(bin, 'scm'), `#!/bin/bash\nexec "${process.execPath}" --import tsx "${join(ROOT, 'src/cli/main.ts')}" "$@"\n`);
  chmodSync(join(bin, 'scm'), 0o755);
  try {
    const tls = cluster.tls;
    assert.ok(tls);
    await cluster.bootstrapAll();
    const client = cluster.client(cluster.allClientAddresses(), 30_000);
    const leader = await cluster.leaderIndex();
    // `scm admin` finds TLS and its identity in the configuration, as a pod's does in its OZONE-SITE.XML_ variables.
    const conf = { OZONE_CONF_DIR: cluster.dir };

    const refused = await stepDown(cluster, leader, bin, {
      ...conf,
      'OZONE-SITE.XML_ozone.scm.client.x509.certificate.file': tls.client.cert,
      'OZONE-SITE.XML_ozone.scm.client.x509.private.key.file': tls.client.key,
    });
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /PERMISSION_DENIED|not an administrator/);
    assert.equal((await client.getClusterInfo()).leaderId, `scm${leader}`);

    const handOver = await stepDown(cluster, leader, bin, conf);
    assert.equal(handOver.code, 0, handOver.output);
    const named = /transferring the leadership to (scm\d)/.exec(handOver.output)?.[1];
    assert.ok(named !== undefined && named !== `scm${leader}`, handOver.output);
    assert.equal((await client.getClusterInfo()).leaderId, named);
    const again = await stepDown(cluster, leader, bin, conf);
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, /is FOLLOWER/);
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(25)}`;
    throw err;
  } finally {
    await cluster.destroy();
    rmSync(bin, { recursive: true, force: true });
  }
});

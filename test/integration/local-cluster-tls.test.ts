// `scm cluster --tls` as a user runs it: a throwaway CA and certificates under <dir>/tls (keys
// 0600), ozone-site.xml switched to mutual TLS, `scm admin … --config <dir>/ozone-site.xml` acting
// as the administrator, the non-admin client.crt refused an admin mutation with the reason (exit
// 1), a command without the TLS configuration told so within seconds, HTTPS metrics, and a second
// run that keeps the CA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { localNodePorts } from '../../src/cli/local-cluster.js';
import { reservePortBlock } from './port-block.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

/** Runs `scm ARGS` to the end: exit code and output. */
function scm(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, OZONE_CONF_DIR: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function httpsText(port: number, ca: Buffer, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, ca, servername: 'localhost' }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function waitFor(out: () => string, child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(out())) {
    if (child.exitCode !== null) throw new Error(`scm cluster exited before printing ${String(pattern)}:\n${out()}`);
    if (Date.now() > deadline) throw new Error(`scm cluster did not print ${String(pattern)} within ${timeoutMs} ms:\n${out()}`);
    await sleep(100);
  }
}

test('scm cluster --tls: certificates, the admin identity from ozone-site.xml, a non-admin refused, plaintext told, HTTPS metrics', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scm-cluster-tls-'));
  const block = await reservePortBlock(3);
  const run = (): { child: ChildProcess; out: () => string; exited: Promise<number | null> } => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'cluster', '--tls', '--dir', dir, '--base-port', String(block.base)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    return { child, out: () => out, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  };
  let cluster = run();
  try {
    await waitFor(cluster.out, cluster.child, /SCM quorum of 3 running with mutual TLS/, 120_000);
    await waitFor(cluster.out, cluster.child, /metrics: curl --cacert/, 10_000);
    assert.match(cluster.out(), /made TLS certificates in .*\/tls/);
    const tls = join(dir, 'tls');
    for (const name of ['ca', 'scm1', 'scm2', 'scm3', 'admin', 'client']) {
      assert.ok(statSync(join(tls, `${name}.crt`)).isFile());
      assert.equal(statSync(join(tls, `${name}.key`)).mode & 0o777, 0o600, `${name}.key must be readable by its owner only`);
    }
    const siteXml = join(dir, 'ozone-site.xml');
    const xml = readFileSync(siteXml, 'utf8');
    for (const key of ['ozone.security.enabled', 'hdds.grpc.tls.enabled', 'hdds.x509.rootca.certificate.file', 'ozone.scm.x509.certificate.file.scmservice.scm2', 'ozone.scm.client.x509.certificate.file', 'ozone.administrators']) {
      assert.ok(xml.includes(`<name>${key}</name>`), `ozone-site.xml lacks ${key}`);
    }

    const roles = await scm(['admin', 'scm', 'roles', '--config', siteXml, '-o', 'json']);
    assert.equal(roles.code, 0, roles.stderr);
    const parsed = JSON.parse(roles.stdout) as Array<{ nodeId: string; role: string }>;
    assert.deepEqual(parsed.map((r) => r.role).sort(), ['FOLLOWER', 'FOLLOWER', 'LEADER']);
    const follower = parsed.find((r) => r.role === 'FOLLOWER')!.nodeId;

    const asClient = { [`OZONE-SITE.XML_ozone.scm.client.x509.certificate.file`]: join(tls, 'client.crt'), [`OZONE-SITE.XML_ozone.scm.client.x509.private.key.file`]: join(tls, 'client.key') };
    const list = await scm(['admin', 'container', 'list', '--config', siteXml], asClient);
    assert.equal(list.code, 0, `a non-admin reads: ${list.stderr}`);
    const refused = await scm(['admin', 'scm', 'transfer', '-n', follower, '--config', siteXml], asClient);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /PERMISSION_DENIED: TransferLeadership refused for "client": not an administrator \(ozone\.administrators\)/);
    const transferred = await scm(['admin', 'scm', 'transfer', '-n', follower, '--config', siteXml]);
    assert.equal(transferred.code, 0, transferred.stderr);

    const started = Date.now();
    const plaintext = await scm(['admin', 'scm', 'roles', '--scm', `127.0.0.1:${block.base}`]);
    assert.equal(plaintext.code, 1);
    assert.match(plaintext.stderr, new RegExp(`the SCM at 127\\.0\\.0\\.1:${block.base} runs TLS, but this command has no TLS configuration`));
    assert.ok(Date.now() - started < 15_000, 'told within seconds, not after the whole --timeout');

    const p1 = localNodePorts(1, block.base);
    const ca = readFileSync(join(tls, 'ca.crt'));
    assert.match(await httpsText(p1.https, ca, '/prom'), /scm_auth_refusals_total\{port="client",reason="not_admin",scm_node_id="scm\d"\} /);

    cluster.child.kill('SIGINT');
    assert.equal(await cluster.exited, 0, cluster.out());
    // A second run keeps the CA and the certificates, so the restarted members trust each other.
    cluster = run();
    await waitFor(cluster.out, cluster.child, /SCM quorum of 3 running with mutual TLS/, 120_000);
    assert.match(cluster.out(), /found TLS certificates in/);
    cluster.child.kill('SIGINT');
    assert.equal(await cluster.exited, 0, cluster.out());
  } catch (err) {
    (err as Error).message += `\n--- scm cluster ---\n${cluster.out()}`;
    throw err;
  } finally {
    if (cluster.child.exitCode === null) {
      cluster.child.kill('SIGINT');
      await cluster.exited;
    }
    block.release();
    await rm(dir, { recursive: true, force: true });
  }
});

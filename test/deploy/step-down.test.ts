// bin/scm-step-down.mjs, the SCM pods' preStop hook, against a stand-in /status endpoint (shaped by
// the node's own NodeStatus type) and a stand-in `scm` on PATH. test/integration/step-down-cluster
// runs it against a real quorum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { statusDocument, type NodeStatus } from '../../src/metrics/http-server.js';
import { ensureLocalCertificates } from '../../src/cli/local-certificates.js';
import { ROOT } from './deploy-files.js';
import { calls, stubScm } from './stub-scm.js';

const STEP_DOWN = join(ROOT, 'bin/scm-step-down.mjs');

function status(role: NodeStatus['role'], peers: NodeStatus['peers']): NodeStatus {
  return {
    nodeId: 'scm-0',
    clusterId: 'CID-test',
    role,
    term: 7,
    leaderId: role === 'leader' ? 'scm-0' : 'scm-1',
    indexes: { lastLog: 100, commit: 100, applied: 100, snapshot: 0 },
    peers,
    consistency: null,
    removedFromGroup: null,
  };
}

const peer = (id: string, voter: boolean, matchIndex: number | null) => ({ id, address: `${id}:9894`, voter, matchIndex, lastContactSeconds: matchIndex === null ? null : 0.1, reachable: matchIndex === null ? null : true });

/**
 * Serves `answer` at /status (over HTTPS with `https`'s certificate, the script then given
 * `--https` and https.args); runs the step-down script against it with a stand-in `scm`.
 */
async function stepDown(
  answer: NodeStatus | number | 'nothing listening',
  options: { args?: string[]; adminExit?: number; env?: Record<string, string>; https?: { cert: Buffer; key: Buffer; args: string[] } } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; calls: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'scm-step-down-'));
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (typeof answer !== 'object' || req.url !== '/status') {
      res.writeHead(typeof answer === 'number' ? answer : 404);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(statusDocument(answer)));
  };
  const server = options.https === undefined ? createServer(handler) : createHttpsServer({ cert: options.https.cert, key: options.https.key }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  if (answer === 'nothing listening') await new Promise<void>((resolve) => server.close(() => resolve()));
  try {
    stubScm(dir);
    const log = join(dir, 'calls.log');
    // Asynchronous spawn: the stand-in /status is served by this very event loop.
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const endpoint = options.https === undefined ? ['--http', `127.0.0.1:${port}`] : ['--https', `127.0.0.1:${port}`, ...options.https.args];
      const child = spawn(process.execPath, [STEP_DOWN, ...endpoint, ...(options.args ?? [])], {
        env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, STUB_LOG: log, STUB_ADMIN_EXIT: String(options.adminExit ?? 0), ...options.env },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    return { ...result, calls: calls(log).map((c) => c.args) };
  } finally {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('step-down: a leader hands over to the voter that has replicated the most', async () => {
  const peers = [peer('scm-0', true, 100), peer('scm-1', true, 90), peer('scm-2', true, 100), peer('scm-3', false, 100)];
  const run = await stepDown(status('leader', peers), { env: { SCM_CLIENT_ADDRESSES: 'scm-0.scm.ns.svc:9860,scm-2.scm.ns.svc:9860' }, args: ['--timeout', '7'] });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.calls, ['admin scm transfer --scm scm-0.scm.ns.svc:9860,scm-2.scm.ns.svc:9860 --new-leader-id scm-2 --timeout 7']);
  assert.match(run.stdout, /scm-0 leads term 7: transferring the leadership to scm-2/);

  const explicit = await stepDown(status('leader', peers.slice(0, 2)), { args: ['--scm', '10.1.1.1:9860'] });
  assert.deepEqual(explicit.calls, ['admin scm transfer --scm 10.1.1.1:9860 --new-leader-id scm-1 --timeout 20']);
  const defaults = await stepDown(status('leader', peers.slice(0, 2)));
  assert.deepEqual(defaults.calls, ['admin scm transfer --scm 127.0.0.1:9860 --new-leader-id scm-1 --timeout 20']);
});

test('step-down: nothing to do for a follower, a lone leader, or a node that does not answer', async () => {
  const peers = [peer('scm-0', true, null), peer('scm-1', true, null)];
  for (const [what, answer] of [
    ['follower', status('follower', peers)],
    ['candidate', status('candidate', peers)],
    ['leader without another voter', status('leader', [peer('scm-0', true, 5), peer('scm-1', false, 5)])],
    ['HTTP 503', 503],
    ['nothing listening', 'nothing listening'],
  ] as const) {
    const run = await stepDown(answer);
    assert.equal(run.code, 0, `${what}: ${run.stderr}`);
    assert.deepEqual(run.calls, [], `${what}: must not transfer`);
    assert.match(run.stdout, /nothing to hand over/, what);
  }
});

test('step-down: a failed transfer exits 1 (Kubernetes records the failed hook), bad options exit 2', async () => {
  const failed = await stepDown(status('leader', [peer('scm-0', true, 9), peer('scm-1', true, 9)]), { adminExit: 3 });
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /the transfer to scm-1 failed \(exit 3\)/);
  const noScm = await stepDown(status('leader', [peer('scm-0', true, 9), peer('scm-1', true, 9)]), { env: { PATH: '/nonexistent' } });
  assert.equal(noScm.code, 1);
  assert.match(noScm.stderr, /cannot run scm/);
  const bad = await stepDown(status('leader', []), { args: ['--timeout', 'soon'] });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--timeout must be a whole number of seconds/);
  const unknown = await stepDown(status('leader', []), { args: ['--leader', 'x'] });
  assert.equal(unknown.code, 2);
});

test('step-down over HTTPS (ozone.http.policy HTTPS_ONLY): the CA and the pod DNS name as server name; a certificate that does not pass is an error, not "nothing to hand over"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-step-down-tls-'));
  try {
    // As a Kubernetes pod's certificate: it names the pod's DNS name, not 127.0.0.1, where the hook dials.
    const certs = await ensureLocalCertificates({ dir, serviceId: 'scmservice', nodeIds: ['scm-0'], hosts: () => ['scm-0.scm.ns.svc'] });
    const node = certs.nodes.get('scm-0');
    assert.ok(node);
    const https = (args: string[]) => ({ cert: readFileSync(node.cert), key: readFileSync(node.key), args });
    const leader = status('leader', [peer('scm-0', true, 9), peer('scm-1', true, 9)]);

    const ok = await stepDown(leader, { https: https(['--ca', certs.ca.cert, '--servername', 'scm-0.scm.ns.svc']) });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(ok.calls, ['admin scm transfer --scm 127.0.0.1:9860 --new-leader-id scm-1 --timeout 20']);

    // The hook's command is not expanded by Kubernetes: the server name may come from the environment.
    const fromEnv = await stepDown(leader, { https: https(['--ca', certs.ca.cert]), env: { SCM_HTTPS_SERVERNAME: 'scm-0.scm.ns.svc' } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal(fromEnv.calls.length, 1);

    const follower = await stepDown(status('follower', []), { https: https(['--ca', certs.ca.cert, '--servername', 'scm-0.scm.ns.svc']) });
    assert.equal(follower.code, 0, follower.stderr);
    assert.match(follower.stdout, /scm-0 is FOLLOWER/);

    const wrongName = await stepDown(leader, { https: https(['--ca', certs.ca.cert, '--servername', 'scm-1.scm.ns.svc']) });
    assert.equal(wrongName.code, 1);
    assert.match(wrongName.stderr, /https:\/\/127\.0\.0\.1:\d+: the node's certificate did not pass \(ERR_TLS_CERT_ALTNAME_INVALID/);
    assert.deepEqual(wrongName.calls, []);

    const byAddress = await stepDown(leader, { https: https(['--ca', certs.ca.cert]) });
    assert.equal(byAddress.code, 1, 'the certificate does not name 127.0.0.1');
    assert.match(byAddress.stderr, /did not pass/);

    const otherCa = await ensureLocalCertificates({ dir: join(dir, 'other'), serviceId: 'scmservice', nodeIds: [], hosts: () => [] });
    const wrongCa = await stepDown(leader, { https: https(['--ca', otherCa.ca.cert, '--servername', 'scm-0.scm.ns.svc']) });
    assert.equal(wrongCa.code, 1);
    assert.match(wrongCa.stderr, /did not pass/);

    const noCa = await stepDown(leader, { https: https([]) });
    assert.equal(noCa.code, 2);
    assert.match(noCa.stderr, /--https needs --ca FILE/);
    const both = await stepDown(leader, { https: https(['--ca', certs.ca.cert, '--http', '127.0.0.1:1']) });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --http or --https, not both/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Who may do what (src/server/authz.ts), on certificates made as `scm cluster --tls` makes them, and
// the audit log's lines: every refusal names the identity and the call, is counted by port and
// reason and logged once per caller; every admin mutation is one JSON line, allowed or not.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ensureLocalCertificates, issueCertificate, type CertificateFiles, type LocalTls } from '../../src/cli/local-certificates.js';
import { AuditLog } from '../../src/server/audit-log.js';
import { Administrators, Authorizer, RefusalReporter, type GuardedCall } from '../../src/server/authz.js';
import type { AuthPort, AuthRefusalReason } from '../../src/metrics/node-metrics.js';

let dir: string;
let tls: LocalTls;
let stranger: CertificateFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scm-authz-test-'));
  tls = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1', 'scm2', 'scm9'], hosts: () => ['127.0.0.1', 'localhost'] });
  stranger = { cert: join(dir, 'other-svc.crt'), key: join(dir, 'other-svc.key') };
  await issueCertificate(tls.ca, { name: 'scm1', node: { serviceId: 'elsewhere', nodeId: 'scm1' }, hosts: ['127.0.0.1'] }, stranger);
});
after(() => rm(dir, { recursive: true, force: true }));

async function callAs(files: CertificateFiles | undefined, request: unknown = {}): Promise<GuardedCall> {
  const raw = files !== undefined ? new X509Certificate(await readFile(files.cert)).raw : undefined;
  return { getAuthContext: () => (raw !== undefined ? { sslPeerCertificate: { raw } } : {}), getPeer: () => 'ipv4:127.0.0.1:40000', request };
}

function setup(administrators: string[], tlsOn = true) {
  const refusals: Array<[AuthPort, AuthRefusalReason]> = [];
  const warnings: string[] = [];
  const auditFile = join(dir, `audit-${Math.random().toString(36).slice(2)}.log`);
  const audit = new AuditLog(auditFile, 'scm1', (err) => assert.fail(err));
  const authz = new Authorizer({
    tls: tlsOn,
    serviceId: 'svc',
    administrators: new Administrators(administrators),
    raftPeer: (id) => ['scm1', 'scm2'].includes(id),
    member: (id) => ['scm1', 'scm2'].includes(id),
    configured: (id) => ['scm1', 'scm2', 'scm3'].includes(id),
    reporter: new RefusalReporter((port, reason) => refusals.push([port, reason]), (_fields, message) => warnings.push(message)),
    audit,
  });
  const lines = async (): Promise<Array<Record<string, unknown>>> => {
    await audit.close();
    return (await readFile(auditFile, 'utf8')).trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  return { authz, refusals, warnings, lines };
}

test('administrators: names, an explicit *, nobody by default', () => {
  assert.ok(new Administrators(['admin']).includes('admin'));
  assert.ok(!new Administrators(['admin']).includes('client'));
  assert.ok(!new Administrators(['admin']).includes(undefined));
  assert.ok(new Administrators(['*']).includes('anyone'));
  assert.ok(new Administrators([]).empty);
});

test('client port: reads pass without a look; a non-admin is refused an admin mutation, naming itself and the call, counted, logged once, audited', async () => {
  const { authz, refusals, warnings, lines } = setup(['admin']);
  assert.equal(authz.clientCall('GetScmRoles', await callAs(tls.client)), undefined);
  assert.equal(authz.clientCall('ListContainer', await callAs(tls.client)), undefined);
  assert.equal(authz.clientCall('AllocateContainer', await callAs(tls.client)), undefined);
  for (let i = 0; i < 3; i++) {
    const decision = authz.clientCall('TransferLeadership', await callAs(tls.client, { clientId: 'c', callId: '1', newLeaderId: 'scm2' }));
    assert.ok(decision !== undefined && 'refused' in decision);
    assert.equal(decision.refused.code, grpc.status.PERMISSION_DENIED);
    assert.equal(decision.refused.details, 'TransferLeadership refused for "client": not an administrator (ozone.administrators)');
  }
  const allowed = authz.clientCall('RemoveScm', await callAs(tls.admin, { clientId: 'c', callId: '2', nodeId: 'scm2' }));
  assert.ok(allowed !== undefined && 'finished' in allowed);
  allowed.finished(grpc.status.NOT_FOUND);
  assert.deepEqual(refusals, [['client', 'not_admin'], ['client', 'not_admin'], ['client', 'not_admin']]);
  assert.equal(warnings.length, 1, 'logged once per caller and reason');
  const audit = await lines();
  assert.equal(audit.length, 4);
  assert.deepEqual(
    audit.map((l) => [l['method'], l['identity'], l['allowed'], l['outcome']]),
    [
      ['TransferLeadership', 'client', false, 'PERMISSION_DENIED'],
      ['TransferLeadership', 'client', false, 'PERMISSION_DENIED'],
      ['TransferLeadership', 'client', false, 'PERMISSION_DENIED'],
      ['RemoveScm', 'admin', true, 'NOT_FOUND'],
    ],
  );
  assert.deepEqual(audit[0]?.['params'], { newLeaderId: 'scm2' }, 'the retry identifiers are left out');
  assert.equal(audit[3]?.['scm'], 'scm1');
  assert.equal(audit[3]?.['reason'], 'administrator');
});

test('AddScm: a configured node may add itself at an address its certificate names, nobody else, and no other node', async () => {
  const { authz, refusals } = setup([]);
  const add = async (files: CertificateFiles, nodeId: string, address: string) => authz.clientCall('AddScm', await callAs(files, { nodeId, address, clientAddress: address }));
  const self = await add(tls.nodes.get('scm2')!, 'scm2', '127.0.0.1:9994');
  assert.ok(self !== undefined && 'finished' in self);
  for (const [files, nodeId, address] of [
    [tls.nodes.get('scm2')!, 'scm3', '127.0.0.1:10094'], // another node
    [tls.nodes.get('scm2')!, 'scm2', '10.9.9.9:9994'], // an address its certificate does not name
    [tls.nodes.get('scm9')!, 'scm9', '127.0.0.1:10794'], // not in the configuration
    [stranger, 'scm1', '127.0.0.1:9894'], // a node of another service
    [tls.admin, 'scm2', '127.0.0.1:9994'], // a person, not an administrator
  ] as const) {
    const decision = await add(files, nodeId, address);
    assert.ok(decision !== undefined && 'refused' in decision, `${nodeId} at ${address}`);
    assert.match(decision.refused.details ?? '', /^AddScm refused for .*: not an administrator \(ozone\.administrators\), and a node may add only itself/);
  }
  assert.equal(refusals.length, 5);
});

test('Raft streams: a member node whose certificate matches the claimed sender only', async () => {
  const { authz, refusals, warnings } = setup(['*']);
  assert.equal(authz.raftStream(await callAs(tls.nodes.get('scm2')), 'scm2'), undefined);
  assert.equal(authz.raftStream(await callAs(tls.nodes.get('scm2')), 'scm1')?.message, 'Raft stream refused for node scm2 of svc ("scm2"): the stream claims to come from scm1');
  assert.equal(authz.raftStream(await callAs(tls.nodes.get('scm9')), 'scm9')?.message, 'Raft stream refused for node scm9 of svc ("scm9"): scm9 is not a member of this node\'s configuration');
  assert.match(authz.raftStream(await callAs(tls.admin), 'admin')?.message ?? '', /^Raft stream refused for "admin": not an SCM node's certificate \(no URI:scm:\/\/svc\/<nodeId> subjectAltName\)/);
  assert.equal(authz.raftStream(await callAs(stranger), 'scm1')?.reason, 'other_service');
  assert.equal(authz.raftStream(await callAs(undefined), 'scm1')?.reason, 'no_certificate');
  assert.deepEqual(refusals.map(([port, reason]) => `${port}:${reason}`), ['ratis:sender_mismatch', 'ratis:non_member', 'ratis:not_a_node', 'ratis:other_service', 'ratis:no_certificate']);
  assert.equal(warnings.length, 5);
});

test('downloads: members and administrators; a non-member node or a plain certificate is refused and audited', async () => {
  const { authz, refusals, lines } = setup(['admin']);
  assert.equal(authz.download(await callAs(tls.nodes.get('scm1'))), undefined);
  assert.equal(authz.download(await callAs(tls.admin)), undefined);
  assert.equal(authz.download(await callAs(tls.nodes.get('scm9')))?.reason, 'non_member');
  assert.equal(authz.download(await callAs(tls.client))?.message, 'checkpoint download refused for "client": only members of the group and the names in ozone.administrators may download scm.db');
  assert.deepEqual(refusals, [['grpc', 'non_member'], ['grpc', 'not_admin']]);
  const audit = await lines();
  assert.deepEqual(audit.map((l) => [l['method'], l['identity'], l['allowed']]), [
    ['DownloadCheckpoint', 'admin', true],
    ['DownloadCheckpoint', 'scm9', false],
    ['DownloadCheckpoint', 'client', false],
  ]);
});

test('GetConsistencyHash: member nodes and administrators only (it may wait, holding a client call slot); not audited', async () => {
  const { authz, refusals, lines } = setup(['admin']);
  assert.equal(authz.clientCall('GetConsistencyHash', await callAs(tls.nodes.get('scm2'), { index: '7' })), undefined);
  assert.equal(authz.clientCall('GetConsistencyHash', await callAs(tls.admin, { index: '7' })), undefined);
  const asClient = authz.clientCall('GetConsistencyHash', await callAs(tls.client, { index: '7' }));
  assert.ok(asClient !== undefined && 'refused' in asClient);
  assert.equal(asClient.refused.code, grpc.status.PERMISSION_DENIED);
  assert.match(String(asClient.refused.details), /^GetConsistencyHash refused for "client": not an SCM node's certificate/);
  const asNonMember = authz.clientCall('GetConsistencyHash', await callAs(tls.nodes.get('scm9'), { index: '7' }));
  assert.ok(asNonMember !== undefined && 'refused' in asNonMember);
  assert.match(String(asNonMember.refused.details), /scm9 is not a member/);
  assert.deepEqual(refusals, [['client', 'not_a_node'], ['client', 'non_member']]);
  assert.deepEqual(await lines(), [], 'reads are not audited');
  assert.equal(setup([], false).authz.clientCall('GetConsistencyHash', await callAs(undefined, { index: '7' })), undefined, 'plaintext: anyone');
});

test('audit log: a flood that outruns the disk is dropped and counted, then one line says how many', async () => {
  const file = join(dir, `audit-flood-${Math.random().toString(36).slice(2)}.log`);
  // 1 KiB of lines may wait for the disk; writes are asynchronous, so a burst in one turn overflows.
  const audit = new AuditLog(file, 'scm1', (err) => assert.fail(err), 1024);
  const entry = { method: 'TransferLeadership', identity: 'client', node: null, fingerprint: null, peer: 'ipv4:127.0.0.1:1', allowed: false, reason: 'not an administrator', outcome: 'PERMISSION_DENIED', params: { newLeaderId: 'scm2' } };
  for (let i = 0; i < 200; i++) audit.record(entry);
  const dropped = audit.droppedLines;
  assert.ok(dropped > 0 && dropped < 200, `some lines dropped: ${dropped}`);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the disk catches up
  audit.record(entry);
  await audit.close();
  const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 200 - dropped + 2, 'the kept lines, one summary, the line after');
  const summary = lines.at(-2);
  assert.equal(summary?.['dropped'], dropped);
  assert.match(String(summary?.['reason']), /more than 1024 bytes of audit lines were waiting for the disk/);
  assert.equal(lines.at(-1)?.['method'], 'TransferLeadership');
});

test('plaintext: everything is allowed, admin mutations are still audited (without an identity)', async () => {
  const { authz, lines } = setup([], false);
  assert.equal(authz.raftStream(await callAs(undefined), 'anyone'), undefined);
  assert.equal(authz.download(await callAs(undefined)), undefined);
  const decision = authz.clientCall('TransferLeadership', await callAs(undefined, { newLeaderId: 'scm2' }));
  assert.ok(decision !== undefined && 'finished' in decision);
  decision.finished(grpc.status.OK);
  const audit = await lines();
  assert.deepEqual(audit.map((l) => [l['method'], l['identity'], l['allowed'], l['outcome'], l['reason']]), [['TransferLeadership', null, true, 'OK', 'plaintext: no authentication']]);
});

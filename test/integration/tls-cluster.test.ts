// Mutual TLS on a live 3-node cluster of real processes (certificates as `scm cluster --tls` makes
// them), against each way an unauthenticated caller once ran a plaintext cluster: anyone could
// transfer leadership, add or remove a member, download scm.db from any node and forge Raft
// appends. Now:
// - a plaintext caller, and a caller whose certificate comes from another CA, are refused on the
//   client, Ratis and InterSCM ports (the handshake fails: they never reach a handler);
// - a node certificate of the cluster CA that is not a member can neither stream Raft messages
//   nor download a checkpoint; a member cannot open a stream as another member, nor send a message
//   naming another member as its sender (PERMISSION_DENIED, counted, logged once per peer);
// - a certificate of the cluster CA that is not an administrator reads roles and containers, and
//   gets PERMISSION_DENIED naming it and the call on TransferLeadership, AddScm and RemoveScm, each
//   written to the audit log; the administrator's certificate runs them;
// - a node that names another cluster cannot download a checkpoint.
// Throughout, no term moves and no leader changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import { ScmClientError } from '../../src/client/scm-client.js';
import { createCa, issueCertificate, type CertificateFiles } from '../../src/cli/local-certificates.js';
import { LOCAL_SERVICE_ID } from '../../src/cli/local-cluster.js';
import type { Message } from '../../src/raft/index.js';
import { encodeRaftMessage } from '../../src/server/raft-codec.js';
import { TlsMaterial } from '../../src/server/tls.js';
import { downloadCheckpoint, DownloadError } from '../../src/snapshot/index.js';
import { TestCluster } from './harness.js';
import { rawStream } from './raw-raft.js';

type Channel = { credentials: grpc.ChannelCredentials; options?: grpc.ChannelOptions };
/** A caller's identity on every port: gRPC credentials, and TLS options for a Raft stream (plaintext when absent). */
type Identity = Channel & { raft?: ConnectionOptions };

/** Opens a Raft stream as `from` with `identity`, sends `messages` and resolves with how the stream ended. */
function raftStream(address: string, identity: Identity, clusterId: string, from: string, messages: Uint8Array[]): ReturnType<typeof rawStream> {
  return rawStream(address, clusterId, from, [messages], identity.raft);
}

/** One GetClusterInfo on the client port with `channel`; resolves with the error, if any. */
function clusterInfo(address: string, channel: Channel): Promise<grpc.ServiceError | undefined> {
  const client = new ScmClientServiceClient(address, channel.credentials, channel.options ?? {});
  return new Promise((resolve) => {
    (client as unknown as Record<string, (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void>)['GetClusterInfo']!.call(
      client,
      {},
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err) => {
        client.close();
        resolve(err ?? undefined);
      },
    );
  });
}

async function download(cluster: TestCluster, k: number, channel: Channel | undefined, clusterId: string): Promise<DownloadError | undefined> {
  try {
    await downloadCheckpoint({
      address: `127.0.0.1:${cluster.node(k).ports.grpc}`,
      expectedClusterId: clusterId,
      destDir: join(cluster.dir, `download-${Math.random().toString(36).slice(2)}`),
      deadlineMs: 5_000,
      ...(channel !== undefined ? { channel: () => channel } : {}),
    });
    return undefined;
  } catch (err) {
    assert.ok(err instanceof DownloadError, String(err));
    return err;
  }
}

test('mutual TLS: strangers are refused on every port, peers are bound to their certificates, admin mutations to ozone.administrators', { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(3, {}, { tls: true });
  try {
    const tls = cluster.tls!;
    await cluster.bootstrapAll();
    const admin = cluster.client(cluster.allClientAddresses(), 10_000);
    const { clusterId } = await admin.getClusterInfo();
    const leader = await cluster.leaderIndex();
    const follower = leader === 1 ? 2 : 1;
    const third = [1, 2, 3].find((k) => k !== leader && k !== follower)!;
    const termBefore = (await admin.getScmRoles()).find((r) => r.nodeId === `scm${leader}`)?.term;
    const ports = (k: number) => ({ client: `127.0.0.1:${cluster.node(k).ports.client}`, ratis: `127.0.0.1:${cluster.node(k).ports.ratis}`, grpc: cluster.node(k).ports.grpc });

    // Other identities: a stranger's CA with an "admin" and a node of its own, a non-member node of ours.
    const otherCa: CertificateFiles = { cert: join(cluster.dir, 'other-ca.crt'), key: join(cluster.dir, 'other-ca.key') };
    await createCa(otherCa, 'some other CA');
    const foreignAdmin: CertificateFiles = { cert: join(cluster.dir, 'foreign-admin.crt'), key: join(cluster.dir, 'foreign-admin.key') };
    await issueCertificate(otherCa, { name: 'admin', node: { serviceId: LOCAL_SERVICE_ID, nodeId: `scm${follower}` }, hosts: ['127.0.0.1'] }, foreignAdmin);
    const scm9: CertificateFiles = { cert: join(cluster.dir, 'tls', 'scm9.crt'), key: join(cluster.dir, 'tls', 'scm9.key') };
    await issueCertificate(tls.ca, { name: 'scm9', node: { serviceId: LOCAL_SERVICE_ID, nodeId: 'scm9' }, hosts: ['127.0.0.1'] }, scm9);

    const plaintext: Identity = { credentials: grpc.credentials.createInsecure() };
    // Trusts our CA (so the client side of the handshake passes) but presents the other CA's certificate.
    const [ourCa, foreignKey, foreignCert] = await Promise.all([readFile(tls.ca.cert), readFile(foreignAdmin.key), readFile(foreignAdmin.cert)]);
    const foreign: Identity = {
      credentials: grpc.credentials.createSsl(ourCa, foreignKey, foreignCert, { checkServerIdentity: () => undefined }),
      options: { 'grpc.ssl_target_name_override': 'localhost' },
      raft: { ca: ourCa, key: foreignKey, cert: foreignCert, checkServerIdentity: () => undefined },
    };
    const asNode = (files: CertificateFiles, nodeId: string): Identity => {
      const material = TlsMaterial.load({ caFile: tls.ca.cert, certFile: files.cert, keyFile: files.key }, { kind: 'node', serviceId: LOCAL_SERVICE_ID, nodeId, host: '127.0.0.1' });
      return { ...material.channel(ports(follower).ratis, { serviceId: LOCAL_SERVICE_ID }), raft: material.connectOptions(ports(follower).ratis, { serviceId: LOCAL_SERVICE_ID }) };
    };
    const to = `scm${follower}`;
    const heartbeat = (from: string, term: number): Uint8Array => encodeRaftMessage({ type: 'heartbeat', from, to, term, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 } satisfies Message);

    // 1. A plaintext caller and a caller of another CA: refused on all three ports, at the handshake.
    for (const [what, channel] of [['plaintext', plaintext], ['another CA', foreign]] as const) {
      for (const k of [leader, follower]) {
        const client = await clusterInfo(ports(k).client, channel);
        assert.equal(client?.code, grpc.status.UNAVAILABLE, `${what} on the client port of scm${k}: ${JSON.stringify(client)}`);
        const raft = await raftStream(ports(k).ratis, channel, clusterId, `scm${follower}`, [heartbeat(`scm${follower}`, 1_000)]);
        assert.equal(raft?.code, grpc.status.UNAVAILABLE, `${what} on the Ratis port of scm${k}: ${JSON.stringify(raft)}`);
        const dl = await download(cluster, k, channel, clusterId);
        assert.equal(dl?.grpcCode, grpc.status.UNAVAILABLE, `${what} on the InterSCM port of scm${k}: ${dl?.message}`);
      }
    }
    // The same calls with the cluster's own certificates go through.
    assert.equal(await clusterInfo(ports(follower).client, cluster.channelAs()!(ports(follower).client)), undefined);
    assert.equal(await download(cluster, leader, cluster.channelAs()!(`127.0.0.1:${ports(leader).grpc}`), clusterId), undefined, 'an administrator may take a backup');

    // 2. A node of our CA that is not a member: no Raft stream, no checkpoint.
    const stranger = asNode(scm9, 'scm9');
    for (let i = 0; i < 3; i++) {
      const refused = await raftStream(ports(follower).ratis, stranger, clusterId, 'scm9', [heartbeat('scm9', 1_000)]);
      assert.equal(refused?.code, grpc.status.PERMISSION_DENIED, JSON.stringify(refused));
      assert.equal(refused?.details, 'Raft stream refused for node scm9 of scmservice ("scm9"): scm9 is not a member of this node\'s configuration');
    }
    const scm9Download = await download(cluster, leader, stranger, clusterId);
    assert.equal(scm9Download?.grpcCode, grpc.status.PERMISSION_DENIED);
    assert.match(scm9Download?.message ?? '', /checkpoint download refused for node scm9 of scmservice \("scm9"\): scm9 is not a member/);

    // 3. A member cannot claim to be another member: not by its stream, not by its messages.
    const member = asNode(tls.nodes.get(`scm${third}`)!, `scm${third}`);
    const asOther = await raftStream(ports(follower).ratis, member, clusterId, `scm${leader}`, [heartbeat(`scm${leader}`, 1_000)]);
    assert.equal(asOther?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(asOther?.details, `Raft stream refused for node scm${third} of scmservice ("scm${third}"): the stream claims to come from scm${leader}`);
    const lying = await raftStream(ports(follower).ratis, member, clusterId, `scm${third}`, [heartbeat(`scm${leader}`, 1_000)]);
    assert.equal(lying?.code, grpc.status.PERMISSION_DENIED);
    assert.match(lying?.details ?? '', new RegExp(`a heartbeat naming scm${leader} as its sender on scm${third}'s connection`));

    // 4. A certificate of our CA that is not an administrator: reads yes, admin mutations no.
    const client = cluster.client(cluster.allClientAddresses(), 10_000, tls.client);
    assert.equal((await client.getScmRoles()).length, 3);
    assert.deepEqual(await client.listContainers({ count: 10 }), []);
    const refusals: Array<[string, () => Promise<unknown>]> = [
      ['TransferLeadership', () => client.transferLeadership(`scm${follower}`)],
      ['AddScm', () => client.addScm({ nodeId: 'scm9', address: '127.0.0.1:1', clientAddress: '127.0.0.1:2' })],
      ['RemoveScm', () => client.removeScm(`scm${follower}`)],
    ];
    for (const [method, call] of refusals) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof ScmClientError);
        assert.equal(err.codeName, 'PERMISSION_DENIED');
        assert.match(err.details, new RegExp(`^${method} refused for "client": not an administrator \\(ozone\\.administrators\\)`));
        return true;
      });
    }
    // The administrator may (and a transfer to the leader itself changes nothing).
    assert.equal((await admin.transferLeadership(`scm${leader}`)).leaderId, `scm${leader}`);

    // 5. A node of another cluster (its VERSION names another clusterID) cannot download a checkpoint.
    const wrongCluster = await download(cluster, leader, asNode(tls.nodes.get(`scm${follower}`)!, `scm${follower}`), 'CID-00000000-0000-0000-0000-000000000000');
    assert.equal(wrongCluster?.grpcCode, grpc.status.FAILED_PRECONDITION);
    assert.match(wrongCluster?.message ?? '', /cluster id mismatch: this SCM belongs to CID-.*, the caller to CID-00000000-0000-0000-0000-000000000000/);

    // Counted by port and reason, logged once per peer, audited; nothing moved.
    assert.equal(await cluster.metric(follower, 'scm_auth_refusals_total{port="ratis",reason="non_member"'), 3);
    assert.equal(await cluster.metric(follower, 'scm_auth_refusals_total{port="ratis",reason="sender_mismatch"'), 2);
    assert.equal(await cluster.metric(leader, 'scm_auth_refusals_total{port="grpc",reason="non_member"'), 1);
    const warned = cluster.output(follower).split('\n').filter((l) => l.includes('"event":"auth_refused"') && l.includes('scm9'));
    assert.equal(warned.length, 1, `one warning for three refused streams of scm9:\n${warned.join('\n')}`);
    const audit = (
      await Promise.all([1, 2, 3].map((k) => readFile(join(cluster.config(k).dbDir, 'scm-audit.log'), 'utf8').catch(() => '')))
    )
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { method: string; identity: string | null; allowed: boolean; outcome: string; reason: string });
    for (const method of ['TransferLeadership', 'AddScm', 'RemoveScm']) {
      assert.ok(
        audit.some((l) => l.method === method && l.identity === 'client' && !l.allowed && l.outcome === 'PERMISSION_DENIED'),
        `no audit line for the refused ${method}:\n${JSON.stringify(audit, null, 1)}`,
      );
    }
    assert.ok(audit.some((l) => l.method === 'TransferLeadership' && l.identity === 'admin' && l.allowed && l.outcome === 'OK'));
    assert.ok(audit.some((l) => l.method === 'AddScm' && l.reason === 'node adding itself' && l.allowed), 'the bootstrapped nodes added themselves');
    assert.ok(audit.some((l) => l.method === 'DownloadCheckpoint' && l.identity === 'admin' && l.allowed));

    const roles = await admin.getScmRoles();
    assert.equal(roles.find((r) => r.role === 'LEADER')?.nodeId, `scm${leader}`, 'no leader change');
    assert.ok(roles.every((r) => r.term === termBefore), `no term moved: ${JSON.stringify(roles)}`);
  } finally {
    await cluster.destroy();
  }
});

// Certificate rotation without a restart, under load, on a live 3-node TLS cluster: while clients
// allocate containers without pause, each node's certificate and key are replaced on disk (a new
// key and certificate of the same CA, renamed into place as a certificate manager would). Each
// node serves the new certificate on its client, Ratis, InterSCM and HTTPS ports within seconds,
// new connections work with it, the cluster keeps committing, and not one call fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { issueCertificate } from '../../src/cli/local-certificates.js';
import { LOCAL_HOSTS, LOCAL_SERVICE_ID } from '../../src/cli/local-cluster.js';
import { TestCluster } from './harness.js';
import { openPipeline } from './workload.js';

/** The SHA-256 fingerprint of the certificate served at 127.0.0.1:port (checked against our CA). */
async function servedFingerprint(cluster: TestCluster, port: number): Promise<string> {
  const tls = cluster.tls!;
  const [ca, cert, key] = await Promise.all([readFile(tls.ca.cert), readFile(tls.admin.cert), readFile(tls.admin.key)]);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, cert, key, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

test('rotating every node certificate under load: served within seconds on every port, no call fails', { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(3, {}, { tls: true });
  try {
    await cluster.bootstrapAll();
    const admin = cluster.client(cluster.allClientAddresses(), 30_000);
    await openPipeline(admin, 'THREE', 'picked');

    // The load: 8 callers on 2 clients, allocating until told to stop; every failure is kept.
    const clients = [cluster.client(cluster.allClientAddresses(), 30_000), cluster.client(cluster.allClientAddresses(), 30_000)];
    const failures: string[] = [];
    let done = 0;
    let stop = false;
    const workers = Array.from({ length: 8 }, async (_, w) => {
      while (!stop) {
        try {
          await clients[w % 2]!.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: `w${w}` });
          done++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    await cluster.waitFor('allocations under way', 30_000, () => Promise.resolve(done >= 50));

    for (let k = 1; k <= 3; k++) {
      const nodeId = `scm${k}`;
      const ports = cluster.node(k).ports;
      const served = [ports.client, ports.ratis, ports.grpc, ports.https];
      const before = await Promise.all(served.map((port) => servedFingerprint(cluster, port)));
      assert.equal(new Set(before).size, 1, 'one certificate on every port');
      await issueCertificate(cluster.tls!.ca, { name: nodeId, node: { serviceId: LOCAL_SERVICE_ID, nodeId }, hosts: LOCAL_HOSTS }, cluster.tls!.nodes.get(nodeId)!);
      const rotatedAt = done;
      await cluster.waitFor(`${nodeId} to serve its new certificate on every port`, 15_000, async () => {
        const now = await Promise.all(served.map((port) => servedFingerprint(cluster, port)));
        return now.every((f) => f !== before[0]);
      });
      // A client connecting now handshakes with the new certificate.
      const fresh = cluster.client([cluster.clientAddress(k)], 10_000);
      assert.equal((await fresh.getScmRoles({ selfOnly: true }))[0]?.nodeId, nodeId);
      await cluster.waitFor(`allocations to go on after rotating ${nodeId}`, 30_000, () => Promise.resolve(done >= rotatedAt + 50));
    }
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, [], `calls failed during the rotation:\n${failures.slice(0, 5).join('\n')}`);
    assert.ok(done >= 200, `only ${done} allocations`);

    const roles = await admin.getScmRoles();
    assert.equal(roles.filter((r) => r.role === 'LEADER' || r.role === 'FOLLOWER').length, 3, JSON.stringify(roles));
    for (let k = 1; k <= 3; k++) {
      const lines = cluster.output(k).split('\n');
      assert.equal(lines.filter((l) => l.includes('"event":"tls_reloaded"')).length, 1, `scm${k} reloads its certificate once`);
      assert.equal(lines.filter((l) => l.includes('"event":"tls_reload_failed"')).length, 0, `scm${k} never used half a rotation`);
    }
    // Every node's HTTPS endpoint still answers, with the new certificate.
    for (let k = 1; k <= 3; k++) assert.match(await cluster.httpGet(k, '/healthz'), /ok/);
  } finally {
    await cluster.destroy();
  }
});

// Loading and reloading TLS key material (src/server/tls.ts) on certificates made by the openssl
// command, as `scm cluster --tls` makes them: every kind of wrong file is an error naming the file
// and what is wrong; a rotation is picked up once complete, never half done.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, ensureLocalCertificates, issueCertificate, type LocalTls } from '../../src/cli/local-certificates.js';
import { describeIdentity, parseSubjectAltNames } from '../../src/server/identity.js';
import { loadTls, TlsMaterial, type TlsMaterialOptions, type TlsRole } from '../../src/server/tls.js';

let dir: string;
let tls: LocalTls;
const scm1: TlsRole = { kind: 'node', serviceId: 'svc', nodeId: 'scm1', host: '127.0.0.1' };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scm-tls-test-'));
  tls = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1', 'scm2'], hosts: () => ['127.0.0.1', 'localhost'] });
});
after(() => rm(dir, { recursive: true, force: true }));

const nodeFiles = (nodeId: string) => ({ caFile: tls.ca.cert, certFile: tls.nodes.get(nodeId)!.cert, keyFile: tls.nodes.get(nodeId)!.key });

test('a node certificate names the node and its addresses; a client certificate only a name', () => {
  const node = loadTls(nodeFiles('scm1'), scm1);
  assert.deepEqual(node.identity.node, { serviceId: 'svc', nodeId: 'scm1' });
  assert.equal(node.identity.name, 'scm1');
  assert.deepEqual(node.identity.ipAddresses, ['127.0.0.1']);
  assert.deepEqual(node.identity.dnsNames, ['localhost']);
  assert.equal(describeIdentity(node.identity), 'node scm1 of svc ("scm1")');
  const client = loadTls({ caFile: tls.ca.cert, certFile: tls.client.cert, keyFile: tls.client.key }, { kind: 'client' });
  assert.equal(client.identity.node, undefined);
  assert.equal(describeIdentity(client.identity), '"client"');
});

test('a second run keeps the CA and every certificate it signed', async () => {
  const again = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1', 'scm2'], hosts: () => ['127.0.0.1', 'localhost'] });
  assert.equal(again.created, false);
  assert.equal(loadTls(nodeFiles('scm2'), { ...scm1, nodeId: 'scm2' }).identity.node?.nodeId, 'scm2');
});

test('wrong material is an error naming the file and the problem', async () => {
  const files = nodeFiles('scm1');
  assert.throws(() => loadTls({ ...files, certFile: join(dir, 'nope.crt') }, scm1), /cannot read the certificate \(ozone\.scm\.x509\.certificate\.file\) .*nope\.crt: ENOENT/);
  assert.throws(() => loadTls({ ...files, keyFile: tls.nodes.get('scm2')!.key }, scm1), /the private key .*scm2\.key \(ozone\.scm\.x509\.private\.key\.file\) does not belong to the certificate .*scm1\.crt/);
  assert.throws(() => loadTls(nodeFiles('scm2'), scm1), /is the certificate of node scm2 of svc \("scm2"\), but this is node scm1 of svc \(subjectAltName URI:scm:\/\/svc\/scm1\)/);
  assert.throws(() => loadTls(files, { ...scm1, serviceId: 'other' }), /but this is node scm1 of other/);
  assert.throws(() => loadTls(files, { ...scm1, host: '10.1.2.3' }), /does not name this node's address 10\.1\.2\.3 \(ozone\.scm\.address\.svc\.scm1\)/);
  assert.throws(() => loadTls({ caFile: tls.ca.cert, certFile: tls.admin.cert, keyFile: tls.admin.key }, scm1), /is not an SCM node's certificate: it has no scm:\/\/ URI; node scm1 needs the subjectAltName URI:scm:\/\/svc\/scm1/);
  assert.throws(() => loadTls({ ...files, caFile: files.certFile }, scm1), /the CA certificates \(hdds\.x509\.rootca\.certificate\.file\) .* holds CN=scm1, which is not a CA certificate/);
  assert.throws(() => loadTls(files, scm1, Date.now() + 10 * 365 * 86_400_000), /expired on/);
  // Signed by another CA.
  const other = { cert: join(dir, 'other-ca.crt'), key: join(dir, 'other-ca.key') };
  await createCa(other, 'another CA');
  const stranger = { cert: join(dir, 'stranger.crt'), key: join(dir, 'stranger.key') };
  await issueCertificate(other, { name: 'scm1', node: { serviceId: 'svc', nodeId: 'scm1' }, hosts: ['127.0.0.1'] }, stranger);
  assert.throws(() => loadTls({ caFile: tls.ca.cert, certFile: stranger.cert, keyFile: stranger.key }, scm1), /is not signed by the CA in .*ca\.crt \(hdds\.x509\.rootca\.certificate\.file\)/);
  // A bundle of both CAs trusts both.
  const bundle = join(dir, 'bundle.crt');
  await writeFile(bundle, Buffer.concat([await readFile(tls.ca.cert), await readFile(other.cert)]));
  assert.equal(loadTls({ caFile: bundle, certFile: stranger.cert, keyFile: stranger.key }, scm1).identity.node?.nodeId, 'scm1');
  const garbage = join(dir, 'garbage.key');
  await writeFile(garbage, 'not a key');
  assert.throws(() => loadTls({ ...files, keyFile: garbage }, scm1), /cannot read the private key \(ozone\.scm\.x509\.private\.key\.file\) .*garbage\.key: .*unencrypted PEM key/);
});

test('subjectAltName entries with special characters cannot smuggle in a second entry', () => {
  assert.deepEqual(parseSubjectAltNames('URI:scm://svc/scm1, DNS:localhost, IP Address:127.0.0.1'), [
    { type: 'URI', value: 'scm://svc/scm1' },
    { type: 'DNS', value: 'localhost' },
    { type: 'IP Address', value: '127.0.0.1' },
  ]);
  assert.deepEqual(parseSubjectAltNames('DNS:"evil, URI:scm://svc/scm1", DNS:x'), [
    { type: 'DNS', value: 'evil, URI:scm://svc/scm1' },
    { type: 'DNS', value: 'x' },
  ]);
});

/**
 * scm1's certificate and key copied into a directory of their own (so a test can rotate them),
 * loaded with `options`, and a fresh certificate and key for scm1 to rotate to.
 */
async function rotatableMaterial(prefix: string, options: TlsMaterialOptions = {}) {
  const work = await mkdtemp(join(dir, prefix));
  const files = { caFile: tls.ca.cert, certFile: join(work, 'scm1.crt'), keyFile: join(work, 'scm1.key') };
  await copyFile(tls.nodes.get('scm1')!.cert, files.certFile);
  await copyFile(tls.nodes.get('scm1')!.key, files.keyFile);
  const material = TlsMaterial.load(files, scm1, options);
  const next = { cert: join(work, 'next.crt'), key: join(work, 'next.key') };
  await issueCertificate(tls.ca, { name: 'scm1', node: { serviceId: 'svc', nodeId: 'scm1' }, hosts: ['127.0.0.1'] }, next);
  return { files, material, next };
}

test('rotation: a complete new set is used at the next poll; a half-written one is not, and is reported only if it stays broken', async () => {
  const failures: string[] = [];
  const reloads: string[] = [];
  const { files, material, next } = await rotatableMaterial('rotate-', { onReloadFailed: (err) => failures.push(err.message), onReloaded: (_prev, current) => reloads.push(current.identity.fingerprint) });
  const heard: string[] = [];
  material.addIdentityCertificateListener((update) => heard.push(update?.certificate.toString('utf8').slice(0, 40) ?? 'null'));
  assert.equal(heard.length, 1, 'a new listener hears the current material at once');
  const first = material.current.identity.fingerprint;
  material.poll();
  assert.equal(reloads.length, 0, 'nothing changed, nothing reloaded');

  // Half a rotation: a new key beside the old certificate.
  await copyFile(next.key, files.keyFile);
  material.poll();
  assert.equal(material.current.identity.fingerprint, first, 'the old set stays in use');
  assert.deepEqual(failures, [], 'not reported on the first poll: the certificate may be on its way');
  material.poll();
  assert.equal(failures.length, 1);
  assert.match(failures[0] ?? '', /does not belong to the certificate/);
  material.poll();
  assert.equal(failures.length, 1, 'reported once per state of the files');

  await copyFile(next.cert, files.certFile);
  material.poll();
  assert.notEqual(material.current.identity.fingerprint, first);
  assert.deepEqual(reloads, [material.current.identity.fingerprint]);
  assert.equal(heard.length, 2, 'identity listeners (grpc-js servers and channels) hear the new set');
  material.close();
});

test('a server that refuses a reloaded set keeps its old one; the others get the new set, and the refusal is reported, not thrown out of the poll', async () => {
  const failures: string[] = [];
  const reloads: string[] = [];
  const { files, material, next } = await rotatableMaterial('refuse-', { onReloadFailed: (err) => failures.push(err.message), onReloaded: (_prev, current) => reloads.push(current.identity.fingerprint) });
  const heard: string[] = [];
  material.onReload(() => {
    throw new Error('setSecureContext refused it');
  });
  material.onReload((current) => heard.push(current.identity.fingerprint));
  await copyFile(next.key, files.keyFile);
  await copyFile(next.cert, files.certFile);
  assert.doesNotThrow(() => material.poll());
  assert.equal(heard.length, 1, 'the listener after the refusing one heard the new set');
  assert.equal(reloads.length, 1);
  assert.equal(failures.length, 1);
  assert.match(failures[0] ?? '', /kept its previous TLS material.*setSecureContext refused it/);
  material.close();
});

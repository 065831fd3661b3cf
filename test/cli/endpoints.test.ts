// Where `scm admin` finds the SCMs (--scm, ozone-site.xml through --config or $OZONE_CONF_DIR,
// --service-id, OZONE-SITE.XML_ variables), and that it fails within seconds, saying so, when
// nothing listens at any of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/run.js';
import { FakeScm, serve, type ServedFake } from '../client/fake-scm.js';

let fake: FakeScm;
let served: ServedFake;
let dir: string;

before(async () => {
  fake = new FakeScm();
  served = await serve(fake);
  dir = mkdtempSync(join(tmpdir(), 'scm-endpoints-'));
});
after(async () => {
  await served.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function scm(env: NodeJS.ProcessEnv, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env });
  return { code, out, err };
}

/** A port nothing listens on: bound once by the kernel's choice, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function siteXml(file: string, props: Record<string, string>): string {
  const body = Object.entries(props)
    .map(([name, value]) => `  <property><name>${name}</name><value>${value}</value></property>`)
    .join('\n');
  writeFileSync(file, `<?xml version="1.0"?>\n<configuration>\n${body}\n</configuration>\n`);
  return file;
}

const port = (address: string): string => address.slice(address.lastIndexOf(':') + 1);

/** Two services; in `svc`, node a is the fake and node b has nothing listening. */
async function twoServices(path: string, withDefault: boolean): Promise<string> {
  const dead = await closedPort();
  return siteXml(path, {
    'ozone.scm.service.ids': 'svc,other',
    ...(withDefault ? { 'ozone.scm.default.service.id': 'svc' } : {}),
    'ozone.scm.nodes.svc': 'a,b',
    'ozone.scm.address.svc.a': '127.0.0.1',
    'ozone.scm.client.port.svc.a': port(served.address),
    'ozone.scm.address.svc.b': '127.0.0.1',
    'ozone.scm.client.port.svc.b': String(dead),
    'ozone.scm.ratis.port.svc.b': '9994',
    'ozone.scm.grpc.port.svc.b': '9995',
    'ozone.scm.http-address.svc.b': '127.0.0.1:9976',
    'ozone.scm.nodes.other': 'x',
    'ozone.scm.address.other.x': '127.0.0.1',
    'ozone.scm.client.port.other.x': String(dead),
  });
}

test('with nothing listening, an admin command fails within seconds naming the addresses', async () => {
  const a = await closedPort();
  const b = await closedPort();
  const started = Date.now();
  const r = await scm({}, 'admin', 'container', 'list', '--scm', `127.0.0.1:${a},127.0.0.1:${b}`);
  const elapsed = Date.now() - started;
  assert.equal(r.code, 1);
  assert.equal(r.err, `scm: no SCM reachable at 127.0.0.1:${a}, 127.0.0.1:${b}; is the cluster running?\n`);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms; the RPC deadline (--timeout 30) must not be waited out`);
  assert.equal(r.out, '');
});

test('one listening SCM among dead addresses is enough', async () => {
  const dead = await closedPort();
  const r = await scm({}, 'admin', 'scm', 'roles', '--scm', `127.0.0.1:${dead},${served.address}`);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /scm1\s.*LEADER/);
});

test('--config names the SCMs of the service; --service-id picks one of several', async () => {
  const withDefault = await twoServices(join(dir, 'default.xml'), true);
  const roles = await scm({}, 'admin', 'scm', 'roles', '--config', withDefault);
  assert.equal(roles.code, 0, roles.err);
  assert.match(roles.out, /LEADER/);

  const several = await twoServices(join(dir, 'several.xml'), false);
  const ambiguous = await scm({}, 'admin', 'scm', 'roles', '--config', several);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.err, /ozone\.scm\.service\.ids lists several services \(svc, other\)/);
  const chosen = await scm({}, 'admin', 'scm', 'roles', '--config', several, '--service-id', 'svc');
  assert.equal(chosen.code, 0, chosen.err);
  const other = await scm({}, 'admin', 'scm', 'roles', '--config', several, '--service-id', 'other');
  assert.equal(other.code, 1);
  assert.match(other.err, /^scm: no SCM reachable at 127\.0\.0\.1:\d+; is the cluster running\?\n$/, 'service "other" has only the dead node');
  const unknown = await scm({}, 'admin', 'scm', 'roles', '--config', several, '--service-id', 'nope');
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /nope is not one of ozone\.scm\.service\.ids \(svc, other\)/);
});

test('$OZONE_CONF_DIR/ozone-site.xml is read when --config is not given; --scm wins over it', async () => {
  const confDir = mkdtempSync(join(dir, 'conf-'));
  await twoServices(join(confDir, 'ozone-site.xml'), true);
  const r = await scm({ OZONE_CONF_DIR: confDir }, 'admin', 'datanode', 'list');
  assert.equal(r.code, 0, r.err);
  const dead = await closedPort();
  const explicit = await scm({ OZONE_CONF_DIR: confDir }, 'admin', 'datanode', 'list', '--scm', `127.0.0.1:${dead}`);
  assert.equal(explicit.code, 1);
  assert.match(explicit.err, new RegExp(`no SCM reachable at 127\\.0\\.0\\.1:${dead};`));
});

test('OZONE-SITE.XML_ variables alone configure the SCM address, as in the container images', async () => {
  const r = await scm({ 'OZONE-SITE.XML_ozone.scm.client.port': port(served.address) }, 'admin', 'scm', 'roles');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /LEADER/);
});

test('a configuration that cannot be read is an error naming the file', async () => {
  const r = await scm({}, 'admin', 'scm', 'roles', '--config', join(dir, 'missing.xml'));
  assert.equal(r.code, 1);
  assert.match(r.err, /cannot read configuration file .*missing\.xml/);
});

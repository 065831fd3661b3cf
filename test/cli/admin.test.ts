// The `scm` CLI run in-process against a fake SCM over real gRPC: output, --json, usage errors (2)
// and RPC errors (1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/run.js';
import { FakeScm, serve, type ServedFake } from '../client/fake-scm.js';

let fake: FakeScm;
let served: ServedFake;

before(async () => {
  fake = new FakeScm();
  served = await serve(fake);
});
after(() => served.stop());

async function scm(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {} });
  return { code, out, err };
}
const at = (): string[] => ['--scm', served.address, '--timeout', '5'];
const DN = ['5f0c4b9e-0d2a-4a53-8c1e-6a1f2b3c4d51', '6a1d5caf-1e3b-4b64-9d2f-7b203c4d5e62', '7b2e6db0-2f4c-4c75-ae30-8c314d5e6f73'];

test('datanode register and list', async () => {
  for (const [i, uuid] of DN.entries()) {
    const r = await scm('admin', 'datanode', 'register', '--uuid', uuid, '--hostname', `dn${i}`, '--ip', `10.0.0.${i + 1}`, '--ports', 'RATIS=9858,STANDALONE=9859', ...at());
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `Datanode ${uuid} (dn${i}, 10.0.0.${i + 1}) is registered.\n`);
  }
  const list = await scm('admin', 'datanode', 'list', ...at());
  assert.match(list.out, /^UUID\s+HOSTNAME\s+IP ADDRESS\s+PORTS\n/);
  assert.match(list.out, /dn2\s+10\.0\.0\.3\s+RATIS=9858,STANDALONE=9859/);
  const json = JSON.parse((await scm('admin', 'datanode', 'list', '--json', ...at())).out) as { uuid: string }[];
  assert.deepEqual(json.map((d) => d.uuid), DN);
});

test('pipeline create, list and close', async () => {
  const created = await scm('admin', 'pipeline', 'create', '--replication-factor', 'one', '--nodes', DN[0] ?? '', '--json', ...at());
  assert.equal(created.code, 0, created.err);
  const pipeline = JSON.parse(created.out) as { id: string; memberIds: string[]; state: string; replicationFactor: string };
  assert.deepEqual(pipeline.memberIds, [DN[0]]);
  assert.equal(pipeline.replicationFactor, 'ONE');
  const three = await scm('admin', 'pipeline', 'create', ...at());
  assert.match(three.out, /^Pipeline [0-9a-f-]{36} is created \(RATIS\/THREE, OPEN\) on /);
  const open = await scm('admin', 'pipeline', 'list', '--state', 'OPEN', '--replication-factor', 'ONE', ...at());
  assert.match(open.out, new RegExp(`${pipeline.id}\\s+OPEN\\s+RATIS/ONE`));
  const extra = await scm('admin', 'pipeline', 'create', '--replication-factor', 'ONE', '--nodes', DN[1] ?? '', '--json', ...at());
  const extraId = (JSON.parse(extra.out) as { id: string }).id;
  const closed = await scm('admin', 'pipeline', 'close', extraId, ...at());
  assert.equal(closed.out, `Pipeline ${extraId} is CLOSED.\n`);
});

test('container create, list, info and close', async () => {
  const created = await scm('admin', 'container', 'create', '--owner', 'alice', ...at());
  assert.equal(created.code, 0, created.err);
  assert.match(created.out, /^Container 1 is created on pipeline [0-9a-f-]{36} \(RATIS\/ONE, OPEN\)\.\n$/);
  await scm('admin', 'container', 'create', ...at());
  const list = await scm('admin', 'container', 'list', '--start', '2', ...at());
  assert.match(list.out, /^ID\s+STATE\s+REPLICATION\s+OWNER/);
  assert.match(list.out, /\n2\s+OPEN\s+RATIS\/ONE\s+OZONE/);
  assert.doesNotMatch(list.out, /\n1\s/);
  const info = await scm('admin', 'container', 'info', '1', ...at());
  assert.match(info.out, /Container id:\s+1\n/);
  assert.match(info.out, /Owner:\s+alice\n/);
  assert.match(info.out, /Datanodes:\n/);
  const closed = await scm('admin', 'container', 'close', '1', ...at());
  assert.equal(closed.out, 'Container 1 is CLOSED (FINALIZE, then CLOSE).\n');
  assert.equal(fake.containers.get(1)?.state, 'CLOSED');
  const again = await scm('admin', 'container', 'close', '1', ...at());
  assert.equal(again.out, 'Container 1 is CLOSED (it already was).\n');
  const json = JSON.parse((await scm('admin', 'container', 'list', '--state', 'closed', '--json', ...at())).out) as { containerId: number }[];
  assert.deepEqual(json.map((c) => c.containerId), [1]);
});

test('scm roles and transfer', async () => {
  const roles = await scm('admin', 'scm', 'roles', ...at());
  assert.match(roles.out, /^NODE ID\s+ADDRESS\s+CLIENT ADDRESS\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\n/);
  assert.match(roles.out, /scm1\s+127\.0\.0\.1:9894\s+127\.0\.0\.1:9860\s+LEADER\s+3\s+42\s+41/);
  const transfer = await scm('admin', 'scm', 'transfer', '--new-leader-id', 'scm1', ...at());
  assert.equal(transfer.out, 'Leadership transferred to scm1.\n');
});

test('RPC errors print the status and exit 1', async () => {
  const missing = await scm('admin', 'container', 'info', '99', ...at());
  assert.equal(missing.code, 1);
  assert.equal(missing.err, 'scm: NOT_FOUND: container #99 does not exist\n');
  const unknownNode = await scm('admin', 'scm', 'transfer', '--new-leader-id', 'scm7', ...at());
  assert.equal(unknownNode.code, 1);
  assert.match(unknownNode.err, /^scm: NOT_FOUND: SCM node scm7 is not a member/);
});

test('bad usage prints a message and the usage, and exits 2 without calling the SCM', async () => {
  const callsBefore = fake.calls.length;
  const cases: [string[], RegExp][] = [
    [['admin', 'scm', 'transfer', ...at()], /^scm: --new-leader-id is required\nUsage: scm admin scm transfer/],
    [['admin', 'container', 'create', '--replication-factor', 'TWO', ...at()], /--replication-factor must be one of ONE, THREE, got "TWO"/],
    [['admin', 'container', 'list', '--count', 'many', ...at()], /--count expects a non-negative whole number/],
    [['admin', 'container', 'info', ...at()], /missing argument CONTAINER_ID/],
    [['admin', 'container', 'info', 'abc', ...at()], /CONTAINER_ID must be a positive whole number/],
    [['admin', 'container', 'info', '1', '2', ...at()], /unexpected argument "2"/],
    [['admin', 'container', 'list', '--bogus', ...at()], /unknown option --bogus/],
    [['admin', 'container', 'list', '--scm', 'nohost'], /--scm: invalid SCM address "nohost"/],
    [['admin', 'container', 'frobnicate'], /unknown command: scm admin container frobnicate\nUsage: scm admin container COMMAND/],
    [[], /no command given/],
    [['admin', 'datanode', 'register', '--hostname', 'h', '--ip', 'nope', ...at()], /--ip: "nope" is not an IP address/],
    [['admin', 'pipeline', 'close', 'p1', ...at()], /PIPELINE_ID must be a UUID/],
  ];
  for (const [argv, message] of cases) {
    const r = await scm(...argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
    assert.equal(r.out, '');
  }
  assert.equal(fake.calls.length, callsBefore);
});

test('--help prints the usage and exits 0', async () => {
  const help = await scm('admin', 'container', 'list', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^Usage: scm admin container list \[options\]\n/);
  assert.match(help.out, /--scm HOST:PORT\[,…\]\s+SCM client addresses \(default 127\.0\.0\.1:9860\)/);
  const top = await scm('--help');
  assert.match(top.out, /scm admin datanode register/);
});

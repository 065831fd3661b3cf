// The `scm admin` commands run in-process against a fake SCM over real gRPC: output (-o table, -o
// json, --json), Ozone's flags, usage errors (2) and RPC errors (1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/run.js';
import type { ScmNodeRole } from '../../src/api/scm-api.js';
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
const callsOf = (method: string): unknown[] => fake.calls.filter((c) => c.method === method).map((c) => c.request);

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
  assert.equal(list.err, '', 'nothing was left out');
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

test('container list says when it cut the list short; --count, -c and --all page through', async () => {
  // Ids 1 and 2 exist already; 23 more make 25.
  for (let i = 0; i < 23; i++) assert.equal((await scm('admin', 'container', 'create', ...at())).code, 0);
  const first = await scm('admin', 'container', 'list', ...at());
  assert.equal(first.code, 0, first.err);
  assert.equal(first.out.trim().split('\n').length, 1 + 20);
  assert.equal(first.err, 'Listed the first 20 containers; more follow. Next: --start 21; everything: --all.\n');
  const next = await scm('admin', 'container', 'list', '-s', '21', ...at());
  assert.equal(next.out.trim().split('\n').length, 1 + 5);
  assert.equal(next.err, '');
  const exact = await scm('admin', 'container', 'list', '-c', '25', ...at());
  assert.equal(exact.out.trim().split('\n').length, 1 + 25);
  assert.equal(exact.err, '', 'exactly --count containers exist: nothing was cut');
  const json = await scm('admin', 'container', 'list', '--count', '3', '-o', 'json', ...at());
  assert.deepEqual((JSON.parse(json.out) as { containerId: number }[]).map((c) => c.containerId), [1, 2, 3]);
  assert.match(json.err, /^Listed the first 3 containers; more follow\. Next: --start 4/);
  const all = await scm('admin', 'container', 'list', '--all', '--json', ...at());
  assert.equal((JSON.parse(all.out) as unknown[]).length, 25);
  assert.equal(all.err, '');
});

test('container list --all pages through more than one ListContainer call holds', async () => {
  const many = new FakeScm();
  const pipeline = many.addOpenPipeline('ONE');
  const template = { state: 'OPEN' as const, pipelineId: pipeline.id, usedBytes: 0, numberOfKeys: 0, stateEnterTime: 0, owner: 'o', deleteTransactionId: 0, sequenceId: 0, replicationType: 'RATIS' as const, replicationFactor: 'ONE' as const };
  for (let id = 1; id <= 2_100; id++) many.containers.set(id, { ...template, containerId: id });
  const server = await serve(many);
  try {
    const all = await scm('admin', 'container', 'list', '-a', '-o', 'json', '--scm', server.address);
    assert.equal(all.code, 0, all.err);
    const ids = (JSON.parse(all.out) as { containerId: number }[]).map((c) => c.containerId);
    assert.equal(ids.length, 2_100);
    assert.deepEqual(ids.slice(998, 1_002), [999, 1_000, 1_001, 1_002]);
    assert.equal(many.calls.filter((c) => c.method === 'listContainers').length, 3);
    const counted = await scm('admin', 'container', 'list', '-c', '1500', '-o', 'json', '--scm', server.address);
    assert.equal((JSON.parse(counted.out) as unknown[]).length, 1_500);
    assert.match(counted.err, /first 1500 containers; more follow\. Next: --start 1501/);
  } finally {
    await server.stop();
  }
});

test('-o json and --json print the same JSON; contradicting them is a usage error', async () => {
  const a = await scm('admin', 'datanode', 'list', '-o', 'json', ...at());
  const b = await scm('admin', 'datanode', 'list', '--json', ...at());
  assert.equal(a.code, 0, a.err);
  assert.equal(a.out, b.out);
  assert.deepEqual(JSON.parse(a.out), JSON.parse(b.out));
  const table = await scm('admin', 'datanode', 'list', '--output', 'TABLE', ...at());
  assert.match(table.out, /^UUID\s+HOSTNAME/);
  const both = await scm('admin', 'datanode', 'list', '--json', '-o', 'table', ...at());
  assert.equal(both.code, 2);
  assert.match(both.err, /^scm: --json contradicts -o table\n/);
});

test('scm roles', async () => {
  const roles = await scm('admin', 'scm', 'roles', ...at());
  assert.match(roles.out, /^NODE ID\s+ADDRESS\s+CLIENT ADDRESS\s+ROLE\s+TERM\s+COMMIT\s+APPLIED\n/);
  assert.match(roles.out, /scm1\s+127\.0\.0\.1:9894\s+127\.0\.0\.1:9860\s+LEADER\s+3\s+42\s+41/);
});

test('scm roles shows "-" for the term and indexes of a node that did not answer (null in JSON)', async () => {
  class PartlyReachable extends FakeScm {
    override async getScmRoles(): Promise<readonly ScmNodeRole[]> {
      const [leader] = await super.getScmRoles();
      if (leader === undefined) throw new Error('fake has no members');
      return [leader, { nodeId: 'scm2', address: '127.0.0.1:9994', clientAddress: '127.0.0.1:9960', role: 'UNREACHABLE', term: 0, commitIndex: 0, appliedIndex: 0 }];
    }
  }
  const server = await serve(new PartlyReachable());
  try {
    const table = await scm('admin', 'scm', 'roles', '--scm', server.address);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /\nscm2\s+127\.0\.0\.1:9994\s+127\.0\.0\.1:9960\s+UNREACHABLE\s+-\s+-\s+-\n$/);
    assert.match(table.out, /\nscm1\s.*LEADER\s+3\s+42\s+41\n/);
    const json = JSON.parse((await scm('admin', 'scm', 'roles', '-o', 'json', '--scm', server.address)).out) as Record<string, unknown>[];
    assert.deepEqual(json[1], { nodeId: 'scm2', address: '127.0.0.1:9994', clientAddress: '127.0.0.1:9960', role: 'UNREACHABLE', term: null, commitIndex: null, appliedIndex: null });
    assert.equal(json[0]?.['term'], 3);
  } finally {
    await server.stop();
  }
});

test('scm transfer: -n/--new-leader-id (or Ozone\'s --newLeaderId), -r for a random follower, and a transfer to the current leader says so', async () => {
  fake.members = [
    { nodeId: 'scm1', address: '127.0.0.1:9894', clientAddress: '127.0.0.1:9860' },
    { nodeId: 'scm2', address: '127.0.0.1:9994', clientAddress: '127.0.0.1:9960' },
    { nodeId: 'scm3', address: '127.0.0.1:10094', clientAddress: '127.0.0.1:10060' },
  ];
  const transfersBefore = callsOf('transferLeadership').length;
  const current = await scm('admin', 'scm', 'transfer', '--new-leader-id', 'scm1', ...at());
  assert.equal(current.code, 0, current.err);
  assert.equal(current.out, 'scm1 is already the leader; nothing to transfer.\n');
  assert.equal(callsOf('transferLeadership').length, transfersBefore, 'nothing was asked of the leader');
  const short = await scm('admin', 'scm', 'transfer', '-n', 'scm2', ...at());
  assert.equal(short.out, 'Leadership transferred from scm1 to scm2.\n');
  assert.deepEqual(callsOf('transferLeadership').at(-1), { clientId: (callsOf('transferLeadership').at(-1) as { clientId: string }).clientId, callId: 1, newLeaderId: 'scm2' });
  const json = JSON.parse((await scm('admin', 'scm', 'transfer', '-n', 'scm3', '-o', 'json', ...at())).out) as Record<string, unknown>;
  assert.deepEqual(json, { leaderId: 'scm3', previousLeaderId: 'scm1', transferred: true });
  // Ozone's own spelling of the option.
  const ozoneSpelling = await scm('admin', 'scm', 'transfer', '--newLeaderId', 'scm2', ...at());
  assert.equal(ozoneSpelling.code, 0, ozoneSpelling.err);
  assert.equal((callsOf('transferLeadership').at(-1) as { newLeaderId: string }).newLeaderId, 'scm2');
  const twice = await scm('admin', 'scm', 'transfer', '--newLeaderId', 'scm2', '-n', 'scm3', ...at());
  assert.equal(twice.code, 2);
  assert.match(twice.err, /given more than once/);
  const random = await scm('admin', 'scm', 'transfer', '-r', ...at());
  assert.equal(random.code, 0, random.err);
  assert.match(random.out, /^Leadership transferred from scm1 to scm[23]\.\n$/, 'only a follower is picked, never the leader');
  fake.members = fake.members.slice(0, 1);
  const alone = await scm('admin', 'scm', 'transfer', '--random', ...at());
  assert.equal(alone.code, 1);
  assert.match(alone.err, /no voting follower to transfer the leadership to/);
});

test('scm decommission --nodeid removes the node from the group', async () => {
  fake.members = [
    { nodeId: 'scm1', address: '127.0.0.1:9894', clientAddress: '127.0.0.1:9860' },
    { nodeId: 'scm2', address: '127.0.0.1:9994', clientAddress: '127.0.0.1:9960' },
  ];
  const r = await scm('admin', 'scm', 'decommission', '--nodeid', 'scm2', ...at());
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^SCM scm2 is removed from the group; members now: scm1\.\n/);
  assert.deepEqual(callsOf('removeScm').map((req) => (req as { nodeId: string }).nodeId), ['scm2']);
  const gone = await scm('admin', 'scm', 'decommission', '--nodeid', 'scm2', ...at());
  assert.equal(gone.code, 1);
  assert.equal(gone.err, 'scm: NOT_FOUND: SCM node scm2 is not a member\n');
});

test('RPC errors print the status and exit 1', async () => {
  const missing = await scm('admin', 'container', 'info', '99', ...at());
  assert.equal(missing.code, 1);
  assert.equal(missing.err, 'scm: NOT_FOUND: container #99 does not exist\n');
  const unknownNode = await scm('admin', 'scm', 'transfer', '--new-leader-id', 'scm7', ...at());
  assert.equal(unknownNode.code, 1);
  assert.match(unknownNode.err, /^scm: NOT_FOUND: SCM node scm7 is not a member/);
});

test('bad usage prints the message and a pointer to --help, and exits 2 without calling the SCM', async () => {
  const callsBefore = fake.calls.length;
  const cases: [string[], RegExp][] = [
    [['admin', 'scm', 'transfer', ...at()], /^scm: give the new leader with -n\/--new-leader-id ID, or -r\/--random\nRun 'scm admin scm transfer --help' for its options\.\n$/],
    [['admin', 'scm', 'transfer', '-n', 'scm2', '-r', ...at()], /give either -n\/--new-leader-id or -r\/--random, not both/],
    [['admin', 'scm', 'decommission', ...at()], /^scm: --nodeid is required\n/],
    [['admin', 'container', 'create', '--replication-factor', 'TWO', ...at()], /--replication-factor must be one of ONE, THREE, got "TWO"/],
    [['admin', 'container', 'list', '--count', 'many', ...at()], /--count expects a non-negative whole number/],
    [['admin', 'container', 'list', '-c', '0', ...at()], /--count must be at least 1/],
    [['admin', 'container', 'list', '--count', '--all', ...at()], /^scm: --count needs a value \(N\)\n/],
    [['admin', 'container', 'list', '-a', '-c', '5', ...at()], /give either -c\/--count or -a\/--all, not both/],
    [['admin', 'container', 'list', '--all=yes', ...at()], /--all is a flag and takes no value/],
    [['admin', 'container', 'list', '-s', '1', '--start', '2', ...at()], /^scm: --start given more than once\n/],
    [['admin', 'container', 'info', ...at()], /missing argument CONTAINER_ID/],
    [['admin', 'container', 'info', 'abc', ...at()], /CONTAINER_ID must be a positive whole number/],
    [['admin', 'container', 'info', '1', '2', ...at()], /unexpected argument "2"/],
    [['admin', 'container', 'list', '--bogus', ...at()], /^scm: unknown option --bogus\nRun 'scm admin container list --help' for its options\.\n$/],
    [['admin', 'container', 'list', '--stat', 'OPEN', ...at()], /^scm: unknown option --stat; did you mean "--start" or "--state"\?\n/],
    [['admin', 'container', 'list', '--scm', 'nohost'], /--scm: invalid SCM address "nohost"/],
    [['admin', 'container', 'list', '--scm', served.address, '--service-id', 'x'], /give either --scm or --service-id, not both/],
    [['admin', 'container', 'list', '--service-id', 'x'], /--service-id needs a configuration naming the service/],
    [['admin', 'datanode', 'register', '--hostname', 'h', '--ip', 'nope', ...at()], /--ip: "nope" is not an IP address/],
    [['admin', 'pipeline', 'close', 'p1', ...at()], /PIPELINE_ID must be a UUID/],
  ];
  for (const [argv, message] of cases) {
    const r = await scm(...argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
    assert.doesNotMatch(r.err, /Usage:/, 'a usage error points at --help instead of printing the whole usage');
    assert.equal(r.out, '');
  }
  assert.equal(fake.calls.length, callsBefore);
});

test('--help prints the usage with the short flags and exits 0', async () => {
  const help = await scm('admin', 'container', 'list', '--help');
  assert.equal(help.code, 0);
  assert.match(help.out, /^Usage: scm admin container list \[options\]\n/);
  assert.match(help.out, /--scm HOST:PORT\[,…\]\s+SCM client addresses/);
  assert.match(help.out, /-c, --count N\s+most containers to list \(default 20\)/);
  assert.match(help.out, /-o, --output FORMAT\s+output format \(one of table, json; default table\)/);
  const top = await scm('--help');
  assert.match(top.out, /scm admin datanode register/);
});

test('scm check: a table of every node at the marker, exit 0 when alike and 1 on a mismatch', async () => {
  const ok = await scm('admin', 'scm', 'check', ...at());
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /^Consistency check at log index 57: no member differs from the majority\.\nNODE ID\s+STATE\s+HASH\s+DETAIL\n/);
  assert.match(ok.out, new RegExp(`\nscm2\\s+MATCH\\s+${'a'.repeat(64)}\\s+-\n$`));
  const saved = fake.consistency;
  fake.consistency = {
    index: 91,
    consistent: false,
    nodes: [
      { nodeId: 'scm1', state: 'MATCH', hash: 'a'.repeat(64), detail: '' },
      { nodeId: 'scm2', state: 'MISMATCH', hash: 'b'.repeat(64), detail: `the majority holds ${'a'.repeat(64)}` },
      { nodeId: 'scm3', state: 'UNREACHABLE', hash: '', detail: 'UNAVAILABLE' },
    ],
  };
  try {
    const bad = await scm('admin', 'scm', 'check', ...at());
    assert.equal(bad.code, 1);
    assert.match(bad.out, /^Consistency check at log index 91: MISMATCH/);
    assert.match(bad.out, /\nscm2\s+MISMATCH\s+b{64}\s+the majority holds a{64}\n/);
    assert.match(bad.out, /\nscm3\s+UNREACHABLE\s+-\s+UNAVAILABLE\n/);
    const json = await scm('admin', 'scm', 'check', '-o', 'json', ...at());
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.out), fake.consistency);
  } finally {
    fake.consistency = saved;
  }
  assert.ok(callsOf('checkConsistency').length >= 3);
});

// The client service over real gRPC with a fake ScmApi: bad requests get INVALID_ARGUMENT naming the
// field and never reach the api; typed errors map to their statuses; NotLeader carries the hint.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ScmClientServiceClient, LEADER_ADDRESS_METADATA, LEADER_ID_METADATA, NOT_LEADER_METADATA } from '../../src/api/client-protocol.js';
import { FakeScm, notLeader, serve, type ServedFake } from '../client/fake-scm.js';
import { UnavailableError, ResourceExhaustedError, NoPipelineError, MalformedCommandError } from '../../src/errors.js';

let fake: FakeScm;
let served: ServedFake;
let stub: grpc.Client;

type Raw = Record<string, unknown>;

function call(method: string, request: Raw): Promise<{ error: grpc.ServiceError | null; response: Raw | undefined }> {
  const fn = (stub as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
  assert.ok(fn, `no method ${method}`);
  return new Promise((resolve) => {
    fn.call(stub, request, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error: grpc.ServiceError | null, response?: Raw) =>
      resolve({ error, response }),
    );
  });
}

const M = { clientId: 'test-client', callId: '7' };
const DN = '0b7a54c1-3f5e-4d2a-9a43-5f0f6e0c1d21';

before(async () => {
  fake = new FakeScm();
  served = await serve(fake, { maxListCount: 100 });
  stub = new ScmClientServiceClient(served.address, grpc.credentials.createInsecure());
});

after(async () => {
  stub.close();
  await served.stop();
});

beforeEach(() => {
  fake.calls.length = 0;
  fake.failWith = undefined;
});

const invalid: [string, string, Raw, RegExp][] = [
  ['AllocateContainer', 'missing clientId', { callId: '1', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, /^clientId: is required/],
  ['AllocateContainer', 'callId 0', { clientId: 'c', callId: '0', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, /^callId: is required/],
  ['AllocateContainer', 'huge clientId', { clientId: 'c'.repeat(10_000), callId: '1', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, /^clientId: is 10000 characters long, the limit is 128/],
  ['AllocateContainer', 'missing type', { ...M, replicationFactor: 'ONE', owner: 'o' }, /^replicationType: is required \(one of RATIS, STAND_ALONE, EC\)/],
  ['AllocateContainer', 'unknown enum number', { ...M, replicationType: 9, replicationFactor: 'ONE', owner: 'o' }, /^replicationType: 9 is not one of RATIS, STAND_ALONE, EC/],
  ['AllocateContainer', 'missing factor', { ...M, replicationType: 'RATIS', owner: 'o' }, /^replicationFactor: is required/],
  ['AllocateContainer', 'missing owner', { ...M, replicationType: 'RATIS', replicationFactor: 'ONE' }, /^owner: is required/],
  ['AllocateContainer', 'huge owner', { ...M, replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'x'.repeat(100_000) }, /^owner: is 100000 characters long, the limit is 256/],
  ['GetContainer', 'missing id', {}, /^containerId: is required/],
  ['GetContainer', 'id beyond 2^53', { containerId: '18446744073709551615' }, /^containerId: "18446744073709551615" is out of range/],
  ['GetContainer', 'bad consistency', { containerId: '1', consistency: 5 }, /^consistency: 5 is not one of LINEARIZABLE, STALE/],
  ['GetContainerWithPipeline', 'missing id', {}, /^containerId: is required/],
  ['ListContainer', 'count 0', { startId: '0', count: 0 }, /^count: is required/],
  ['ListContainer', 'count above limit', { startId: '0', count: 101 }, /^count: 101 exceeds the limit of 100/],
  ['ListContainer', 'bad state', { startId: '0', count: 5, state: 42 }, /^state: 42 is not one of OPEN/],
  ['UpdateContainerState', 'missing event', { ...M, containerId: '1' }, /^event: is required \(one of FINALIZE/],
  ['UpdateContainerState', 'bad event', { ...M, containerId: '1', event: 77 }, /^event: 77 is not one of/],
  ['UpdateContainerState', 'missing container', { ...M, event: 'CLOSE' }, /^containerId: is required/],
  ['CreatePipeline', 'member count mismatch', { ...M, replicationType: 'RATIS', replicationFactor: 'THREE', memberIds: [DN] }, /^memberIds: factor THREE needs 3 members, got 1/],
  ['CreatePipeline', 'member not a uuid', { ...M, replicationType: 'RATIS', replicationFactor: 'ONE', memberIds: ['dn1'] }, /^memberIds\[0\]: "dn1" is not a UUID/],
  ['CreatePipeline', 'duplicate member', { ...M, replicationType: 'RATIS', replicationFactor: 'THREE', memberIds: [DN, DN, DN] }, /^memberIds: lists datanode .* twice/],
  ['ListPipelines', 'bad state', { state: 12 }, /^state: 12 is not one of ALLOCATED, OPEN, DORMANT, CLOSED/],
  ['ClosePipeline', 'missing id', { ...M }, /^pipelineId: is required/],
  ['ClosePipeline', 'not a uuid', { ...M, pipelineId: 'p-1' }, /^pipelineId: "p-1" is not a UUID/],
  ['RegisterDatanode', 'missing datanode', { ...M }, /^datanode: is required/],
  ['RegisterDatanode', 'bad ip', { ...M, datanode: { uuid: DN, hostname: 'dn1', ipAddress: '300.1.1.1' } }, /^datanode\.ipAddress: "300\.1\.1\.1" is not an IPv4 or IPv6 address/],
  ['RegisterDatanode', 'bad hostname', { ...M, datanode: { uuid: DN, hostname: 'dn 1', ipAddress: '10.0.0.1' } }, /^datanode\.hostname: "dn 1" is not a valid host name/],
  ['RegisterDatanode', 'huge hostname', { ...M, datanode: { uuid: DN, hostname: 'a'.repeat(5000), ipAddress: '10.0.0.1' } }, /^datanode\.hostname: is 5000 characters long, the limit is 253/],
  ['RegisterDatanode', 'port out of range', { ...M, datanode: { uuid: DN, hostname: 'dn1', ipAddress: '10.0.0.1', ports: [{ name: 'RATIS', value: 70000 }] } }, /^datanode\.ports\[0\]\.value: 70000 is not a port/],
  ['RegisterDatanode', 'missing uuid', { ...M, datanode: { hostname: 'dn1', ipAddress: '10.0.0.1' } }, /^datanode\.uuid: is required/],
  ['ListDatanodes', 'bad consistency', { consistency: 3 }, /^consistency: 3 is not one of/],
  ['TransferLeadership', 'missing id', { ...M }, /^newLeaderId: is required/],
  ['TransferLeadership', 'bad id', { ...M, newLeaderId: 'scm 2' }, /^newLeaderId: "scm 2" may contain only/],
  ['AddScm', 'bad address', { ...M, nodeId: 'scm4', address: 'host', clientAddress: 'host:9860' }, /^address: "host" is not host:port/],
  ['AddScm', 'port out of range', { ...M, nodeId: 'scm4', address: 'host:99999', clientAddress: 'host:9860' }, /^address: "host:99999" is not host:port/],
  ['RemoveScm', 'missing id', { ...M }, /^nodeId: is required/],
  ['CheckConsistency', 'missing clientId', { callId: '1' }, /^clientId: is required/],
  ['GetConsistencyHash', 'missing index', {}, /^index: is required/],
  ['GetConsistencyHash', 'index beyond 2^53', { index: '18446744073709551615' }, /^index: "18446744073709551615" is out of range/],
];

for (const [method, label, request, message] of invalid) {
  test(`${method} with ${label} is INVALID_ARGUMENT and never reaches the api`, async () => {
    const before = fake.containers.size;
    const { error } = await call(method, request);
    assert.ok(error, 'expected an error');
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT, error.details);
    assert.match(error.details, message);
    assert.deepEqual(fake.calls, []);
    assert.equal(fake.containers.size, before);
  });
}

test('a valid allocation reaches the api with decoded, typed fields', async () => {
  fake.addOpenPipeline('ONE');
  const { error, response } = await call('AllocateContainer', { clientId: 'c1', callId: '12', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'OZONE' });
  assert.equal(error, null);
  assert.deepEqual(fake.calls, [
    { method: 'allocateContainer', request: { clientId: 'c1', callId: 12, replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'OZONE' } },
  ]);
  const container = response?.['container'] as Raw;
  assert.equal(container['state'], 'OPEN');
  assert.equal(container['owner'], 'OZONE');
  assert.equal((response?.['pipeline'] as Raw)['state'], 'PIPELINE_OPEN');
});

test('reads default to LINEARIZABLE and pass STALE through', async () => {
  await call('ListDatanodes', {});
  await call('ListDatanodes', { consistency: 'STALE' });
  assert.deepEqual(
    fake.calls.map((c) => c.request),
    [{ consistency: 'LINEARIZABLE' }, { consistency: 'STALE' }],
  );
});

test('an unknown container id is NOT_FOUND', async () => {
  const { error } = await call('GetContainer', { containerId: '999999' });
  assert.equal(error?.code, grpc.status.NOT_FOUND);
  assert.match(error?.details ?? '', /container #999999 does not exist/);
});

test('a wrong lifecycle event is FAILED_PRECONDITION naming the current state, state unchanged', async () => {
  fake.addOpenPipeline('ONE');
  const { response } = await call('AllocateContainer', { clientId: 'c1', callId: '50', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
  const id = Number((response?.['container'] as Raw)['containerId']);
  const { error } = await call('UpdateContainerState', { clientId: 'c1', callId: '51', containerId: String(id), event: 'CLEANUP' });
  assert.equal(error?.code, grpc.status.FAILED_PRECONDITION);
  assert.match(error?.details ?? '', /is OPEN; event CLEANUP is not allowed/);
  assert.equal(error?.metadata.get(NOT_LEADER_METADATA).length, 0, 'not a not-leader answer');
  assert.equal(fake.containers.get(id)?.state, 'OPEN');
});

test('NotLeader is FAILED_PRECONDITION with the leader id and address in trailing metadata', async () => {
  fake.failWith = notLeader('scm2', '127.0.0.1:9960');
  const { error } = await call('AllocateContainer', { clientId: 'c1', callId: '3', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
  assert.equal(error?.code, grpc.status.FAILED_PRECONDITION);
  assert.deepEqual(error?.metadata.get(LEADER_ID_METADATA), ['scm2']);
  assert.deepEqual(error?.metadata.get(LEADER_ADDRESS_METADATA), ['127.0.0.1:9960']);
  assert.deepEqual(error?.metadata.get(NOT_LEADER_METADATA), ['true']);
  assert.match(error?.details ?? '', /the leader is scm2 at 127\.0\.0\.1:9960/);
});

test('NotLeader without a known leader still marks the answer as not-leader', async () => {
  fake.failWith = notLeader();
  const { error } = await call('GetContainer', { containerId: '1' });
  assert.equal(error?.code, grpc.status.FAILED_PRECONDITION);
  assert.deepEqual(error?.metadata.get(NOT_LEADER_METADATA), ['true']);
  assert.deepEqual(error?.metadata.get(LEADER_ID_METADATA), []);
});

test('UnavailableError, ResourceExhaustedError and unknown errors map to their statuses', async () => {
  fake.failWith = new UnavailableError('no quorum');
  assert.equal((await call('ListDatanodes', {})).error?.code, grpc.status.UNAVAILABLE);
  fake.failWith = new ResourceExhaustedError('queue full');
  assert.equal((await call('ListDatanodes', {})).error?.code, grpc.status.RESOURCE_EXHAUSTED);
  fake.failWith = new Error('boom');
  const { error } = await call('ListDatanodes', {});
  assert.equal(error?.code, grpc.status.INTERNAL);
  assert.match(error?.details ?? '', /internal error in ListDatanodes: boom/);
});

test("the state machine's command errors map to the statuses of their concept", async () => {
  fake.failWith = new NoPipelineError('no OPEN pipeline');
  assert.equal((await call('ListDatanodes', {})).error?.code, grpc.status.FAILED_PRECONDITION);
  // A malformed command entry is a bug or corruption: INTERNAL, reported like any unexpected error.
  fake.failWith = new MalformedCommandError('malformed SCM command: empty data');
  const { error } = await call('ListDatanodes', {});
  assert.equal(error?.code, grpc.status.INTERNAL);
  assert.match(error?.details ?? '', /internal error in ListDatanodes: malformed SCM command: empty data/);
});

test('GetScmRoles and GetClusterInfo answer with every field', async () => {
  const roles = await call('GetScmRoles', {});
  const node = (roles.response?.['nodes'] as Raw[])[0];
  assert.deepEqual(node, { nodeId: 'scm1', address: '127.0.0.1:9894', clientAddress: '127.0.0.1:9860', role: 'LEADER', term: '3', commitIndex: '42', appliedIndex: '41' });
  const info = await call('GetClusterInfo', {});
  assert.equal(info.response?.['clusterId'], 'CID-2a3f36e8-506f-40eb-986e-bb79d188fd55');
});

test('CheckConsistency and GetConsistencyHash answer with every field', async () => {
  const report = await call('CheckConsistency', { ...M });
  assert.deepEqual(report.response, {
    index: '57',
    consistent: true,
    nodes: [
      { nodeId: 'scm1', state: 'MATCH', hash: 'a'.repeat(64), detail: '' },
      { nodeId: 'scm2', state: 'MATCH', hash: 'a'.repeat(64), detail: '' },
    ],
  });
  const hash = await call('GetConsistencyHash', { index: '57' });
  assert.deepEqual(hash.response, { index: '57', known: true, hash: 'a'.repeat(64), detail: '' });
  assert.deepEqual(fake.calls.at(-1), { method: 'getConsistencyHash', request: { index: 57 } });
});

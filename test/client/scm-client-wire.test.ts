// ScmClient writes AllocateContainer requests and reads ContainerWithPipeline answers without
// protobufjs (src/api/allocate-request-codec.ts, container-response-codec.ts) and gives the same
// results as the generic path: the same value, or the same error when the answer is not one it can
// read (unknown fields, ids beyond 2^53, bytes that are not a message).
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import { encodeContainerWithPipeline, type Wire } from '../../src/api/client-codec.js';
import { ScmClient, ScmClientError } from '../../src/client/scm-client.js';
import { FakeScm, serve, type ServedFake } from './fake-scm.js';

type Method = { path: string; requestSerialize: (v: unknown) => Buffer; responseDeserialize: (b: Buffer) => unknown };
const service = ScmClientServiceClient.service as unknown as Record<string, Method>;

/** Counts the client's uses of the generic (protobufjs) serializers; restored after each test. */
const counts = new Map<string, number>();
const restore: (() => void)[] = [];
for (const name of ['AllocateContainer', 'GetContainerWithPipeline']) {
  const method = service[name] as Method;
  for (const key of ['requestSerialize', 'responseDeserialize'] as const) {
    const original = method[key] as (v: never) => unknown;
    (method as Record<string, unknown>)[key] = (v: never) => {
      counts.set(`${name}.${key}`, (counts.get(`${name}.${key}`) ?? 0) + 1);
      return original(v);
    };
    restore.push(() => void ((method as Record<string, unknown>)[key] = original));
  }
}
const servers: { stop(): Promise<void> }[] = [];
const clients: ScmClient[] = [];
afterEach(() => counts.clear());
after(async () => {
  for (const r of restore) r();
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
});

function client(address: string): ScmClient {
  const c = new ScmClient({ addresses: [address], clientId: 'wire-client', initialBackoffMs: 5, maxBackoffMs: 20, deadlineMs: 5000 });
  clients.push(c);
  return c;
}

async function fakeWithDatanodes(): Promise<{ fake: FakeScm; served: ServedFake }> {
  const fake = new FakeScm();
  const pipeline = fake.addOpenPipeline('THREE');
  pipeline.memberIds.forEach((uuid, i) => fake.datanodes.set(uuid, { uuid, hostname: `dn${i}`, ipAddress: `10.0.0.${i}`, ports: [{ name: 'RATIS', value: 9858 + i }] }));
  const served = await serve(fake);
  servers.push(served);
  return { fake, served };
}

test('AllocateContainer and GetContainerWithPipeline go without the generic serializers, with the same values', async () => {
  const { fake, served } = await fakeWithDatanodes();
  const c = client(served.address);
  const allocated = await c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' });
  assert.deepEqual(fake.calls[0], { method: 'allocateContainer', request: { clientId: 'wire-client', callId: 1, replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' } });
  const container = fake.containers.get(allocated.container.containerId);
  assert.ok(container !== undefined);
  const pipeline = fake.pipelines.get(container.pipelineId);
  assert.ok(pipeline !== undefined);
  const expected = { container, pipeline, datanodes: pipeline.memberIds.map((id) => fake.datanodes.get(id)) };
  assert.deepEqual(allocated, expected);
  assert.equal(allocated.datanodes.length, 3);
  assert.deepEqual(await c.getContainerWithPipeline(allocated.container.containerId), expected);
  assert.deepEqual(Object.fromEntries(counts), { 'GetContainerWithPipeline.requestSerialize': 1 });
  // A request it does not write itself (an owner that is not ASCII) still goes, through the generic
  // serializer, and gets the server's answer.
  await assert.rejects(c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'ö' }), (err: unknown) => {
    assert.ok(err instanceof ScmClientError);
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /^owner: must be printable ASCII/);
    return true;
  });
  assert.equal(counts.get('AllocateContainer.requestSerialize'), 1);
  assert.equal(counts.get('AllocateContainer.responseDeserialize'), undefined);
});

/** A server answering AllocateContainer with the given bytes, as they are. */
async function rawServer(answer: Buffer): Promise<string> {
  const server = new grpc.Server();
  const definition = {
    AllocateContainer: {
      path: (service['AllocateContainer'] as Method).path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: Buffer) => v,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (v: Buffer) => v,
      responseDeserialize: (b: Buffer) => b,
    },
  };
  server.addService(definition as unknown as grpc.ServiceDefinition, { AllocateContainer: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, answer) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e !== null ? reject(e) : resolve(p))));
  servers.push({ stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) });
  return `127.0.0.1:${port}`;
}

/** What the generated stub (the generic path) makes of the same answer. */
async function viaStub(address: string): Promise<{ error: grpc.ServiceError | null; response: Wire | undefined }> {
  const stub = new ScmClientServiceClient(address, grpc.credentials.createInsecure()) as unknown as Record<string, (...args: unknown[]) => void> & grpc.Client;
  try {
    return await new Promise((resolve) =>
      stub['AllocateContainer']?.call(stub, { clientId: 'c', callId: '1', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error: grpc.ServiceError | null, response?: Wire) => resolve({ error, response })),
    );
  } finally {
    stub.close();
  }
}

const CWP = {
  container: { containerId: 7, state: 'OPEN', pipelineId: 'p', usedBytes: 0, numberOfKeys: 0, stateEnterTime: 1, owner: 'o', deleteTransactionId: 0, sequenceId: 0, replicationType: 'RATIS', replicationFactor: 'ONE' },
  pipeline: { id: 'p', memberIds: ['m'], state: 'OPEN', replicationType: 'RATIS', replicationFactor: 'ONE', leaderId: '', creationTime: 2 },
  datanodes: [],
} as const;

test('an answer the direct decoder declines is read the generic way, to the same value or error', async () => {
  const generic = service['AllocateContainer'] as unknown as { responseSerialize: (v: unknown) => Buffer };
  const good = generic.responseSerialize(encodeContainerWithPipeline(CWP));
  // An unknown field (a newer server): the generic reader skips it.
  const withUnknown = await rawServer(Buffer.concat([good, Buffer.from([0x78, 0x01])]));
  assert.deepEqual(await client(withUnknown).allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }), CWP);
  assert.equal(counts.get('AllocateContainer.responseDeserialize'), 1);

  // An id beyond 2^53: the generic path's "malformed response" error, thrown by the client as before.
  const wire = encodeContainerWithPipeline(CWP);
  const huge = await rawServer(generic.responseSerialize({ ...wire, container: { ...(wire['container'] as Wire), containerId: '9007199254740993' } }));
  await assert.rejects(client(huge).allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }), {
    name: 'Error',
    message: 'malformed response: containerId="9007199254740993" is not a safe integer',
  });

  // Bytes that are not a message: the same gRPC status as the generated stub gets.
  const garbage = await rawServer(Buffer.from([0x0a, 0x05, 0x08]));
  const stub = await viaStub(garbage);
  assert.ok(stub.error !== null);
  await assert.rejects(client(garbage).allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }), (err: unknown) => {
    assert.ok(err instanceof ScmClientError);
    assert.equal(err.code, stub.error?.code);
    assert.equal(err.details, stub.error?.details);
    return true;
  });
});

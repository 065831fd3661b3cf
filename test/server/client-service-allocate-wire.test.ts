// The client service reads AllocateContainer requests with the direct decoder
// (src/api/allocate-request-codec.ts) and answers every request exactly as the generic path does:
// the same validated request reaches the ScmApi, or the same INVALID_ARGUMENT (naming the field, or
// "the request body is not a AllocateContainer request" for bytes that are not one) without it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { decodeAllocateContainer, encodeContainerWithPipeline, type Wire } from '../../src/api/client-codec.js';
import { registerClientService, toGrpcStatus, type CallGuard } from '../../src/server/client-service.js';
import type { AllocateContainerRequest, ContainerWithPipeline } from '../../src/api/scm-api.js';
import { SeededRandom } from '../../src/raft/index.js';
import { allocateMethod, randomAllocateBytes } from '../api/allocate-samples.js';

const CWP: ContainerWithPipeline = {
  container: { containerId: 7, state: 'OPEN', pipelineId: 'p', usedBytes: 0, numberOfKeys: 0, stateEnterTime: 1, owner: 'o', deleteTransactionId: 0, sequenceId: 0, replicationType: 'RATIS', replicationFactor: 'ONE' },
  pipeline: { id: 'p', memberIds: ['m'], state: 'OPEN', replicationType: 'RATIS', replicationFactor: 'ONE', leaderId: '', creationTime: 2 },
  datanodes: [],
};

/** The service as registered: AllocateContainer's method definition and handler, over an api that records requests. */
function registered(guard?: CallGuard): { deserialize: (bytes: Buffer) => unknown; handler: grpc.handleUnaryCall<unknown, unknown>; received: AllocateContainerRequest[] } {
  const received: AllocateContainerRequest[] = [];
  const api = {
    allocateContainer: async (request: AllocateContainerRequest) => {
      received.push(request);
      return CWP;
    },
  };
  let definition: grpc.ServiceDefinition | undefined;
  let handlers: grpc.UntypedServiceImplementation | undefined;
  const server = { addService: (d: grpc.ServiceDefinition, h: grpc.UntypedServiceImplementation) => ((definition = d), (handlers = h)) };
  registerClientService(server as unknown as grpc.Server, api as never, guard === undefined ? {} : { guard });
  const method = definition?.['AllocateContainer'];
  const handler = handlers?.['AllocateContainer'] as grpc.handleUnaryCall<unknown, unknown> | undefined;
  assert.ok(method !== undefined && handler !== undefined);
  return { deserialize: (bytes) => method.requestDeserialize(bytes), handler, received };
}

type Outcome = { request: unknown; answer: unknown } | { code: grpc.status | undefined; details: string | undefined };

/** What the service does with `bytes`: the request the api got and the answer, or the status. */
async function serve(service: ReturnType<typeof registered>, bytes: Buffer): Promise<Outcome> {
  const request = service.deserialize(bytes);
  const call = { request, getPeer: () => 'ipv4:127.0.0.1:1', metadata: new grpc.Metadata() };
  const before = service.received.length;
  return new Promise((resolve) => {
    service.handler(call as never, (error, value) => {
      if (error !== null) resolve({ code: error.code, details: error.details });
      else resolve({ request: service.received[before], answer: value });
    });
  });
}

/** What the generic path (protobufjs decode + toObject, then decodeAllocateContainer) makes of `bytes`. */
function expected(bytes: Buffer): Outcome {
  let wire: Wire;
  try {
    wire = allocateMethod.requestDeserialize(bytes);
  } catch (err) {
    return { code: grpc.status.INVALID_ARGUMENT, details: `the request body is not a AllocateContainer request: ${(err as Error).message}` };
  }
  try {
    return { request: decodeAllocateContainer(wire), answer: encodeContainerWithPipeline(CWP) };
  } catch (err) {
    const status = toGrpcStatus(err, 'AllocateContainer');
    return { code: status.code, details: status.details };
  }
}

const generic = allocateMethod as unknown as Record<string, unknown>;
const genericDeserialize = allocateMethod.requestDeserialize;
let genericCalls = 0;
generic['requestDeserialize'] = (bytes: Buffer) => {
  genericCalls++;
  return genericDeserialize(bytes);
};
after(() => void (generic['requestDeserialize'] = genericDeserialize));

test('every request gets the generic path\'s outcome: the same validated request, or the same status', async () => {
  const service = registered();
  const rng = new SeededRandom(404);
  const kinds = { accepted: 0, invalid: 0, undecodable: 0 };
  for (let i = 0; i < 5_000; i++) {
    const bytes = randomAllocateBytes(rng);
    const want = expected(bytes);
    const got = await serve(service, bytes);
    assert.deepEqual(got, want, `case ${i}: ${bytes.toString('hex')}`);
    if ('request' in want) kinds.accepted++;
    else if (want.details?.startsWith('the request body') === true) kinds.undecodable++;
    else kinds.invalid++;
  }
  assert.ok(kinds.accepted > 500 && kinds.invalid > 500 && kinds.undecodable > 50, JSON.stringify(kinds));
});

test('a request as clients send it is read without the generic deserializer', async () => {
  const service = registered();
  const bytes = allocateMethod.requestSerialize({ clientId: 'client-1', callId: '12', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' });
  genericCalls = 0;
  const got = await serve(service, bytes);
  assert.deepEqual(got, { request: { clientId: 'client-1', callId: 12, replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' }, answer: encodeContainerWithPipeline(CWP) });
  assert.equal(genericCalls, 0);
  // One it refuses goes the generic way, to the generic error.
  const refused = allocateMethod.requestSerialize({ clientId: 'client 1', callId: '12', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' });
  assert.deepEqual(await serve(service, refused), { code: grpc.status.INVALID_ARGUMENT, details: 'clientId: must be printable ASCII without spaces' });
  assert.equal(genericCalls, 1);
});

test('the guard sees the validated request, frozen: a guard that changes it refuses the call and nothing reaches the api', async () => {
  const bytes = allocateMethod.requestSerialize({ clientId: 'client-1', callId: '300', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'ownerX' });
  const seen: unknown[] = [];
  const reader = registered({ admit: (_method, call) => void seen.push(call.request) });
  assert.deepEqual(await serve(reader, bytes), { request: { clientId: 'client-1', callId: 300, replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'ownerX' }, answer: encodeContainerWithPipeline(CWP) });
  assert.equal(Object.isFrozen(seen[0]), true);

  // Before the direct decoder the guard's change was validated (INVALID_ARGUMENT); it must never reach the api unchecked.
  const writer = registered({
    admit: (_method, call) => {
      (call.request as Record<string, unknown>)['owner'] = 'has space';
      return undefined;
    },
  });
  const got = await serve(writer, bytes);
  assert.ok('code' in got && got.code === grpc.status.INTERNAL, JSON.stringify(got));
  assert.equal(writer.received.length, 0);
});

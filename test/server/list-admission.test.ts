// List calls wait for the pages ahead of them (read-turns.ts), so they have a bound of their own
// (ozone.scm.client.list.handler.count) within the handler count: beyond it a list call is refused
// RESOURCE_EXHAUSTED at once, with a retry hint, before the api is called; the refusal is reported
// (metric and a log line, the first each time the bound is reached), and writes are still admitted.
// A call beyond the handler count itself (ozone.scm.handler.count.key) is refused and reported the
// same way, as handler_count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RETRY_AFTER_METADATA } from '../../src/api/client-protocol.js';
import type { Wire } from '../../src/api/client-codec.js';
import type { ScmApi } from '../../src/api/scm-api.js';
import { NotLeaderError } from '../../src/errors.js';
import { registerClientService, type AdmissionRefusal } from '../../src/server/client-service.js';
import type { UnaryCall, UnaryHandler, UnaryServiceImplementation } from '../../src/server/unary-grpc-server.js';

interface Answer {
  readonly error: Partial<grpc.StatusObject> | null;
}

function harness(options: { maxInFlight: number; maxListsInFlight: number }) {
  const started: string[] = [];
  const held: Array<() => void> = [];
  const hold = <T>(method: string, value: T) => {
    started.push(method);
    return new Promise<T>((resolve) => held.push(() => resolve(value)));
  };
  const api = {
    listContainers: () => hold('listContainers', []),
    listPipelines: () => hold('listPipelines', []),
    listDatanodes: () => hold('listDatanodes', []),
    getScmRoles: () => hold('getScmRoles', []),
  } as unknown as ScmApi;
  const refusals: AdmissionRefusal[] = [];
  let handlers: Record<string, UnaryHandler<Wire, Wire>> = {};
  registerClientService({ addService: (_d, implementation: UnaryServiceImplementation) => (handlers = implementation as typeof handlers) }, api, {
    ...options,
    retryAfterMs: 40,
    onAdmissionRefused: (refusal) => refusals.push(refusal),
  });
  const call = (method: string, request: Wire = {}): Promise<Answer> =>
    new Promise((resolve) => {
      const unaryCall = { request, getPeer: () => '10.0.0.9:5000' } as unknown as UnaryCall<Wire>;
      handlers[method]!(unaryCall, (error: Partial<grpc.StatusObject> | null) => resolve({ error }));
    });
  return { started, held, refusals, call };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('beyond ozone.scm.client.list.handler.count, a list call is refused at once with a retry hint and reported; other calls are still admitted', async () => {
  const h = harness({ maxInFlight: 4, maxListsInFlight: 2 });
  const first = [h.call('ListContainer', { count: 10 }), h.call('ListPipelines')];
  await settle();
  assert.deepEqual(h.started, ['listContainers', 'listPipelines']);

  const refused = await h.call('ListDatanodes');
  assert.equal(refused.error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(refused.error?.details ?? '', /already working on 2 list calls \(ozone\.scm\.client\.list\.handler\.count\); ListDatanodes was not started: retry in 40 ms/);
  assert.equal((refused.error?.metadata as grpc.Metadata).get(RETRY_AFTER_METADATA)[0], '40');
  assert.equal((await h.call('ListContainer', { count: 10 })).error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.deepEqual(h.started, ['listContainers', 'listPipelines'], 'the refused calls never reached the api');
  assert.deepEqual(
    h.refusals.map((r) => [r.reason, r.method, r.peer, r.first]),
    [
      ['list_limit', 'ListDatanodes', '10.0.0.9:5000', true],
      ['list_limit', 'ListContainer', '10.0.0.9:5000', false],
    ],
    'reported, the first refusal marked for the log',
  );

  // The refused lists took no handler slot: two calls of another kind fill the handler count.
  const others = [h.call('GetScmRoles'), h.call('GetScmRoles')];
  await settle();
  assert.deepEqual(h.started, ['listContainers', 'listPipelines', 'getScmRoles', 'getScmRoles']);
  h.held.splice(0).forEach((release) => release());
  assert.deepEqual(await Promise.all([...first, ...others]), [{ error: null }, { error: null }, { error: null }, { error: null }]);

  // The lists in progress went back under half the bound: the next refusal is a first again.
  const again = [h.call('ListContainer', { count: 10 }), h.call('ListContainer', { count: 10 })];
  await settle();
  const refusedAgain = await h.call('ListPipelines');
  assert.match(refusedAgain.error?.details ?? '', /ozone\.scm\.client\.list\.handler\.count/);
  assert.deepEqual(h.refusals.map((r) => r.first), [true, false, true]);
  h.held.splice(0).forEach((release) => release());
  assert.deepEqual(await Promise.all(again), [{ error: null }, { error: null }]);
});

test('a call refused by the handler count is reported as handler_count (a list too, not as list_limit), the first marked each time the bound is reached', async () => {
  const h = harness({ maxInFlight: 2, maxListsInFlight: 5 });
  const holding = [h.call('GetScmRoles'), h.call('GetScmRoles')];
  await settle();
  const refused = await h.call('ListContainer', { count: 10 });
  assert.equal(refused.error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(refused.error?.details ?? '', /already working on 2 client calls \(ozone\.scm\.handler\.count\.key\); ListContainer was not started: retry in 40 ms/);
  assert.equal((refused.error?.metadata as grpc.Metadata).get(RETRY_AFTER_METADATA)[0], '40');
  assert.equal((await h.call('GetScmRoles')).error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.deepEqual(
    h.refusals.map((r) => [r.reason, r.method, r.peer, r.first]),
    [
      ['handler_count', 'ListContainer', '10.0.0.9:5000', true],
      ['handler_count', 'GetScmRoles', '10.0.0.9:5000', false],
    ],
  );
  assert.deepEqual(h.started, ['getScmRoles', 'getScmRoles'], 'the refused calls never reached the api');
  h.held.splice(0).forEach((release) => release());
  await Promise.all(holding);
  // Back under half the bound: the next refusal is a first again.
  const again = [h.call('GetScmRoles'), h.call('GetScmRoles')];
  await settle();
  await h.call('GetScmRoles');
  assert.deepEqual(h.refusals.map((r) => r.first), [true, false, true]);
  h.held.splice(0).forEach((release) => release());
  await Promise.all(again);
});

test('a list call that fails gives its list slot back: a follower refusing every linearizable list NotLeader never ends up refusing lists for good', async () => {
  const maxListsInFlight = 2;
  let failing = true;
  const api = {
    listContainers: () => (failing ? Promise.reject(new NotLeaderError('scm1', '127.0.0.1:9860')) : Promise.resolve([])),
  } as unknown as ScmApi;
  const refusals: AdmissionRefusal[] = [];
  let handlers: Record<string, UnaryHandler<Wire, Wire>> = {};
  registerClientService({ addService: (_d, implementation: UnaryServiceImplementation) => (handlers = implementation as typeof handlers) }, api, {
    maxInFlight: 10,
    maxListsInFlight,
    onAdmissionRefused: (refusal) => refusals.push(refusal),
  });
  const call = (): Promise<Partial<grpc.StatusObject> | null> =>
    new Promise((resolve) => {
      const unaryCall = { request: { count: 10 }, getPeer: () => '10.0.0.9:5000' } as unknown as UnaryCall<Wire>;
      handlers['ListContainer']!(unaryCall, (error: Partial<grpc.StatusObject> | null) => resolve(error));
    });
  for (let i = 0; i < 3 * maxListsInFlight; i++) assert.equal((await call())?.code, grpc.status.FAILED_PRECONDITION, 'refused NotLeader');
  failing = false;
  assert.equal(await call(), null, 'a list is admitted and answered after many failed ones');
  assert.deepEqual(refusals, []);
});

test('a list refusal whose report throws is still answered, and the failure goes to onInternalError', async () => {
  const api = { listContainers: () => new Promise(() => undefined) } as unknown as ScmApi;
  const internal: string[] = [];
  let handlers: Record<string, UnaryHandler<Wire, Wire>> = {};
  registerClientService({ addService: (_d, implementation: UnaryServiceImplementation) => (handlers = implementation as typeof handlers) }, api, {
    maxListsInFlight: 1,
    onAdmissionRefused: () => {
      throw new Error('the log is gone');
    },
    onInternalError: (method, error) => internal.push(`${method}: ${(error as Error).message}`),
  });
  const call = (): Promise<Partial<grpc.StatusObject> | null> =>
    new Promise((resolve) => {
      const unaryCall = { request: { count: 10 }, getPeer: () => '10.0.0.9:5000' } as unknown as UnaryCall<Wire>;
      handlers['ListContainer']!(unaryCall, (error: Partial<grpc.StatusObject> | null) => resolve(error));
    });
  void call(); // holds the one list slot for good
  await settle();
  assert.equal((await call())?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.deepEqual(internal, ['ListContainer: the log is gone']);
});

// Client load must not starve the Raft traffic of a node: beyond ozone.scm.handler.count.key calls
// in progress, one more is answered RESOURCE_EXHAUSTED at once with a retry hint, and the
// TypeScript client waits that long and tries again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RETRY_AFTER_METADATA, ScmClientServiceClient } from '../../src/api/client-protocol.js';
import { ScmClient } from '../../src/client/scm-client.js';
import { FakeScm, serve } from '../client/fake-scm.js';

function allocate(stub: grpc.Client, callId: number): Promise<grpc.ServiceError | null> {
  const fn = (stub as unknown as Record<string, (...args: unknown[]) => unknown>)['AllocateContainer']!;
  return new Promise((resolve) => {
    fn.call(stub, { clientId: 'c', callId: String(callId), replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) =>
      resolve(err),
    );
  });
}

test('beyond the bound of calls in progress, a call is refused at once with a retry hint; the others complete', async () => {
  const fake = new FakeScm();
  fake.addOpenPipeline('ONE');
  let release = (): void => undefined;
  fake.gate = new Promise<void>((resolve) => (release = resolve));
  const served = await serve(fake, { maxInFlight: 2, retryAfterMs: 75 });
  const stub = new ScmClientServiceClient(served.address, grpc.credentials.createInsecure());
  try {
    const held = [allocate(stub, 1), allocate(stub, 2)];
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await allocate(stub, 3);
    assert.equal(refused?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(refused?.details ?? '', /already working on 2 client calls \(ozone\.scm\.handler\.count\.key\); AllocateContainer was not started: retry in 75 ms/);
    assert.equal(refused?.metadata.get(RETRY_AFTER_METADATA)[0], '75');
    assert.equal(fake.calls.filter((c) => c.method === 'allocateContainer').length, 2, 'the refused call never reached the api');
    release();
    assert.deepEqual(await Promise.all(held), [null, null]);
    assert.equal(await allocate(stub, 4), null, 'a slot is free again');
  } finally {
    stub.close();
    await served.stop();
  }
});

test('the client honours the hint: it waits and tries the same SCM again, with the same call id', async () => {
  const fake = new FakeScm();
  fake.addOpenPipeline('ONE');
  let release = (): void => undefined;
  fake.gate = new Promise<void>((resolve) => (release = resolve));
  const served = await serve(fake, { maxInFlight: 1, retryAfterMs: 200 });
  const holder = new ScmClient({ addresses: [served.address], deadlineMs: 10_000 });
  const client = new ScmClient({ addresses: [served.address], deadlineMs: 10_000 });
  try {
    const first = holder.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
    setTimeout(() => {
      fake.gate = undefined;
      release();
    }, 300);
    const [a, b] = await Promise.all([first, second]);
    assert.notEqual(a.container.containerId, b.container.containerId);
    const mine = fake.calls.filter((c) => c.method === 'allocateContainer' && (c.request as { clientId: string }).clientId === client.clientId);
    assert.equal(mine.length, 1, 'refused attempts never reached the api; the retry did, once');
  } finally {
    holder.close();
    client.close();
    await served.stop();
  }
});

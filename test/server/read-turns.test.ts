// List calls released together by one read barrier (a leader confirms the reads waiting for it in
// one Ready) must not make their pages back to back in one microtask drain: 64 ListContainer(4096)
// calls held a leader's event loop for about a second that way, its heartbeats stopped, and its
// followers deposed it. Each page is made, and its answer handed to the server, in a turn of the
// event loop of its own. Driven through the client service's handlers, the real ScmService and
// ScmStateMachine; the turns are a queue the test runs one at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { registerClientService } from '../../src/server/client-service.js';
import { ScmService, type ReplicationGateway } from '../../src/server/scm-service.js';
import { ReadTurns } from '../../src/server/read-turns.js';
import { gatewayWith } from './gateway-stub.js';
import type { UnaryCall, UnaryHandler, UnaryServiceImplementation } from '../../src/server/unary-grpc-server.js';
import type { Wire } from '../../src/api/client-codec.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { basicSetup, EntryFactory, withTempDir } from '../statemachine/helpers.js';

/** A barrier every read waits on until the test releases them all at once, as a Ready does. */
function gatewayWithSharedBarrier(): { gateway: ReplicationGateway; release: () => void } {
  let release = (): void => undefined;
  const barrier = new Promise<void>((resolve) => (release = resolve));
  const gateway = gatewayWith({ readBarrier: () => barrier });
  return { gateway, release };
}

/** Lets every pending microtask (and the reactions they queue) run; no timer or I/O runs. */
async function drainMicrotasks(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

test('list calls released by one barrier make their pages one per turn of the event loop, each answered in its turn', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
    try {
      const f = new EntryFactory();
      await sm.applyBatch([...basicSetup(f), ...Array.from({ length: 5 }, () => f.allocate('p1'))]);
      const events: string[] = [];
      // The state machine's list, observed: when each page is made.
      const observed = new Proxy(sm, {
        get(target, key, receiver) {
          if (key === 'listContainers') {
            return (...args: Parameters<ScmStateMachine['listContainers']>) => {
              events.push('page');
              return target.listContainers(...args);
            };
          }
          const value: unknown = Reflect.get(target, key, receiver);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const turns: Array<() => void> = [];
      const { gateway, release } = gatewayWithSharedBarrier();
      const service = new ScmService(() => observed, gateway, new ReadTurns((callback) => turns.push(callback)));
      let handlers: Record<string, UnaryHandler<Wire, Wire>> = {};
      registerClientService({ addService: (_definition, implementation: UnaryServiceImplementation) => (handlers = implementation as typeof handlers) }, service);

      const answers: Array<{ error: unknown; containers: number }> = [];
      for (let k = 0; k < 3; k++) {
        const call = { request: { startId: '0', count: 4 } } as unknown as UnaryCall<Wire>;
        handlers['ListContainer']!(call, (error: Partial<grpc.StatusObject> | null, value?: Wire | null) => {
          events.push('answer');
          answers.push({ error, containers: (value?.['containers'] as unknown[] | undefined)?.length ?? -1 });
        });
      }
      release();
      await drainMicrotasks();
      assert.deepEqual(events, [], 'no page is made in the drain that released the barrier');
      assert.equal(turns.length, 1, 'one turn is asked for, not one per read');

      for (let turn = 1; turn <= 3; turn++) {
        turns.shift()!();
        await drainMicrotasks();
        assert.deepEqual(events, Array.from({ length: turn }, () => ['page', 'answer']).flat(), `after turn ${turn}: one page made and answered per turn`);
      }
      assert.equal(turns.length, 0, 'no turn is asked for once no read waits');
      assert.deepEqual(answers, Array.from({ length: 3 }, () => ({ error: null, containers: 4 })));
    } finally {
      await sm.close();
    }
  });
});

test('a read whose work throws is refused in its turn and the reads behind it still get theirs', async () => {
  const turns: Array<() => void> = [];
  const reads = new ReadTurns((callback) => turns.push(callback));
  const failed = reads.take(() => {
    throw new Error('boom');
  });
  const next = reads.take(() => 'second');
  assert.equal(reads.waitingCount, 2);
  turns.shift()!();
  await assert.rejects(failed, /boom/);
  turns.shift()!();
  assert.equal(await next, 'second');
  assert.equal(reads.waitingCount, 0);
  assert.equal(turns.length, 0);
});

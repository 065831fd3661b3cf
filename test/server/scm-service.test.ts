// The service's refusals from the leader's own state: final only once that state holds everything
// committed before the call. A new leader that has not yet applied its predecessor's entries (an
// allocation already acknowledged) must not answer NOT_FOUND for it; the service then waits for a
// read barrier and looks again. Driven through the real ScmStateMachine and a gateway whose
// barrier applies what the "predecessor" committed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ScmService, type ReplicationGateway } from '../../src/server/scm-service.js';
import { gatewayWith } from './gateway-stub.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import type { LogEntry } from '../../src/log-entry.js';
import { basicSetup, EntryFactory, withTempDir } from '../statemachine/helpers.js';

function gatewayFor(sm: ScmStateMachine, f: EntryFactory, committedElsewhere: LogEntry[]): { gateway: ReplicationGateway; barriers: () => number } {
  let barriers = 0;
  const gateway = gatewayWith({
    ensureLeader: () => undefined,
    submit: async (data) => {
      const [result] = await sm.applyBatch([f.raw(data)]);
      return result!;
    },
    readBarrier: async () => {
      barriers++;
      // The barrier waits until this node has applied everything committed before it.
      if (committedElsewhere.length > 0) await sm.applyBatch(committedElsewhere.splice(0));
    },
  });
  return { gateway, barriers: () => barriers };
}

test('a refusal from a leader that had not applied its predecessor\'s entries is confirmed after a read barrier, and turns out wrong', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      // The predecessor committed (and acknowledged) container 1; this leader has not applied it yet.
      const pending = [f.allocate('p1')];
      const { gateway, barriers } = gatewayFor(sm, f, pending);
      const service = new ScmService(() => sm, gateway);
      const updated = await service.updateContainerState({ clientId: 'c', callId: 1, containerId: 1, event: 'FINALIZE' });
      assert.equal(updated.state, 'CLOSING');
      assert.equal(barriers(), 1, 'the refusal waited for one barrier');

      // A container that does not exist after the barrier either: NOT_FOUND, as before.
      await assert.rejects(service.updateContainerState({ clientId: 'c', callId: 2, containerId: 99, event: 'FINALIZE' }), (err: Error) => err instanceof NotFoundError && /container #99 not found/.test(err.message));
      assert.equal(barriers(), 2);
      // A call the state allows at once takes no barrier.
      await service.updateContainerState({ clientId: 'c', callId: 3, containerId: 1, event: 'CLOSE' });
      assert.equal(barriers(), 2);
    } finally {
      await sm.close();
    }
  });
});

test('a call id reused for a call of another kind is refused, naming the reuse, and changes nothing; a retry of the same call gets its answer', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const { gateway } = gatewayFor(sm, f, []);
      const service = new ScmService(() => sm, gateway);
      const first = await service.allocateContainer({ clientId: 'reuser', callId: 7, replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'first' });
      const pipelines = sm.listPipelines().length;
      const containers = sm.listContainers(0, 1_000).length;
      // The same call again: the retry cache's answer.
      assert.deepEqual(await service.allocateContainer({ clientId: 'reuser', callId: 7, replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'first' }), first);
      // Another kind of call with those ids: refused, not answered with the container.
      await assert.rejects(
        service.closePipeline({ clientId: 'reuser', callId: 7, pipelineId: first.pipeline.id }),
        (err: Error) =>
          err instanceof InvalidArgumentError &&
          err.message === 'callId: call 7 of client reuser already answered another call (its outcome is a container; ClosePipeline makes a pipeline): a retry repeats the same call, and a new call needs a new call id',
      );
      assert.equal(sm.getPipeline(first.pipeline.id)?.state, 'OPEN', 'the pipeline was not closed');
      assert.equal(sm.listPipelines().length, pipelines);
      assert.equal(sm.listContainers(0, 1_000).length, containers);
    } finally {
      await sm.close();
    }
  });
});

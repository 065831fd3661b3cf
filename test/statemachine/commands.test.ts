import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import { decodeCommand, encodeCommand, type ScmCommand } from '../../src/statemachine/commands.js';
import { InvalidArgumentError, MalformedCommandError } from '../../src/errors.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { basicSetup, EntryFactory, withTempDir } from './helpers.js';

const env = { clientId: 'c1', callId: 42, timestamp: 1_700_000_000_123 };
const SAMPLES: ScmCommand[] = [
  { ...env, type: 'allocateContainer', replicationType: 'EC', replicationFactor: 'ONE', owner: 'om', pipelineId: 'p' },
  { ...env, type: 'updateContainerState', containerId: 2 ** 40, event: 'FORCE_CLOSE' },
  { ...env, type: 'createPipeline', pipelineId: 'p', members: ['a', 'b', 'c'], replicationType: 'RATIS', replicationFactor: 'THREE', leaderId: 'b', initialState: 'ALLOCATED' },
  { ...env, type: 'openPipeline', pipelineId: 'p' },
  { ...env, type: 'closePipeline', pipelineId: 'p' },
  { ...env, type: 'deactivatePipeline', pipelineId: 'p' },
  { ...env, type: 'activatePipeline', pipelineId: 'p' },
  { ...env, type: 'registerDatanode', uuid: 'u', hostname: 'h', ipAddress: '::1', ports: [{ name: 'RATIS', value: 9858 }, { name: 'STANDALONE', value: 9859 }] },
];

for (const cmd of SAMPLES) {
  test(`command ${cmd.type} round-trips through its bytes`, () => {
    assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
  });
}

test('createPipeline defaults: no leader, OPEN', () => {
  const cmd: ScmCommand = { ...env, type: 'createPipeline', pipelineId: 'p', members: ['a'], replicationType: 'STAND_ALONE', replicationFactor: 'ONE' };
  assert.deepEqual(decodeCommand(encodeCommand(cmd)), { ...cmd, leaderId: '', initialState: 'OPEN' });
});

const BAD: [string, ScmCommand, RegExp][] = [
  ['empty clientId', { ...env, clientId: '', type: 'openPipeline', pipelineId: 'p' }, /clientId is required/],
  ['negative callId', { ...env, callId: -1, type: 'openPipeline', pipelineId: 'p' }, /callId must be an integer/],
  ['fractional timestamp', { ...env, timestamp: 1.5, type: 'openPipeline', pipelineId: 'p' }, /timestamp must be an integer/],
  ['unknown replication type', { ...env, type: 'allocateContainer', replicationType: 'CHAINED' as never, replicationFactor: 'ONE', owner: 'o', pipelineId: 'p' }, /replicationType must be one of RATIS, STAND_ALONE, EC, got CHAINED/],
  ['unknown factor', { ...env, type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'TWO' as never, owner: 'o', pipelineId: 'p' }, /replicationFactor must be one of/],
  ['missing owner', { ...env, type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'ONE', owner: '', pipelineId: 'p' }, /owner is required/],
  ['container id 0', { ...env, type: 'updateContainerState', containerId: 0, event: 'CLOSE' }, /containerId must be an integer in \[1,/],
  ['unknown event', { ...env, type: 'updateContainerState', containerId: 1, event: 'EXPLODE' as never }, /event must be one of/],
  ['wrong member count', { ...env, type: 'createPipeline', pipelineId: 'p', members: ['a', 'b'], replicationType: 'RATIS', replicationFactor: 'THREE' }, /members has 2 datanodes but replication factor THREE needs 3/],
  ['repeated member', { ...env, type: 'createPipeline', pipelineId: 'p', members: ['a', 'a', 'b'], replicationType: 'RATIS', replicationFactor: 'THREE' }, /members has a repeated datanode/],
  ['leader not a member', { ...env, type: 'createPipeline', pipelineId: 'p', members: ['a'], replicationType: 'RATIS', replicationFactor: 'ONE', leaderId: 'z' }, /leaderId "z" is not one of the members/],
  ['bad ip', { ...env, type: 'registerDatanode', uuid: 'u', hostname: 'h', ipAddress: 'not-an-ip', ports: [] }, /ipAddress "not-an-ip"/],
  ['bad port', { ...env, type: 'registerDatanode', uuid: 'u', hostname: 'h', ipAddress: '10.0.0.1', ports: [{ name: 'R', value: 70000 }] }, /ports\[0\]\.value/],
  ['repeated port name', { ...env, type: 'registerDatanode', uuid: 'u', hostname: 'h', ipAddress: '10.0.0.1', ports: [{ name: 'R', value: 1 }, { name: 'R', value: 2 }] }, /ports\[1\]\.name "R" is repeated/],
  ['unknown command type', { ...env, type: 'launchRocket' } as never, /unknown command type launchRocket/],
];

for (const [what, cmd, message] of BAD) {
  test(`encode rejects ${what} with an InvalidArgumentError naming the field`, () => {
    assert.throws(() => encodeCommand(cmd), (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message));
  });
}

/** Hand-built protobuf bytes, to produce what encodeCommand refuses to. */
function rawCommand(fields: (w: protobuf.Writer) => void): Uint8Array {
  const w = protobuf.Writer.create();
  fields(w);
  return w.finish();
}

const MALFORMED: [string, Uint8Array, RegExp][] = [
  ['empty bytes', new Uint8Array(0), /empty data/],
  ['garbage', new Uint8Array([0xff, 0xff, 0xff]), /malformed SCM command/],
  ['truncated', encodeCommand(SAMPLES[0] as ScmCommand).subarray(0, 10), /malformed SCM command/],
  ['missing callId', rawCommand((w) => w.uint32(10).string('c')), /missing required 'callId'/],
  ['no command set', rawCommand((w) => w.uint32(10).string('c').uint32(16).uint64(1).uint32(24).uint64(5)), /command is missing/],
  [
    'unknown enum value',
    rawCommand((w) => {
      w.uint32(10).string('c').uint32(16).uint64(1).uint32(24).uint64(5);
      w.uint32((11 << 3) | 2).fork().uint32(8).uint64(3).uint32(16).int32(99).ldelim();
    }),
    /event/,
  ],
  [
    'callId beyond safe integers',
    rawCommand((w) => {
      w.uint32(10).string('c').uint32(16).uint64('18446744073709551615').uint32(24).uint64(5);
      w.uint32((13 << 3) | 2).fork().uint32(10).string('p').ldelim();
    }),
    /callId 18446744073709551615 is not a safe integer/,
  ],
];

for (const [what, bytes, message] of MALFORMED) {
  test(`decode of ${what} throws a MalformedCommandError saying what is wrong`, () => {
    assert.throws(() => decodeCommand(bytes), (err: unknown) => err instanceof MalformedCommandError && err.code === 'MALFORMED_COMMAND' && message.test(err.message));
  });
}

test('applying malformed entries records a deterministic failure, advances applied, and changes no state', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const retryEntries = sm.retryCacheSize();
      const results = await sm.applyBatch(MALFORMED.slice(1).map(([, bytes]) => f.raw(bytes)));
      assert.equal(results.length, MALFORMED.length - 1);
      for (const r of results) {
        assert.ok(!r.outcome.ok);
        assert.equal(r.outcome.error.code, 'MALFORMED_COMMAND');
        assert.equal(r.command, undefined);
      }
      assert.deepEqual(sm.lastApplied(), { term: 1, index: f.index });
      assert.equal(sm.retryCacheSize(), retryEntries, 'malformed commands have no (clientId, callId) to cache');
      assert.equal(sm.containerCount(), 0);
    } finally {
      await sm.close();
    }
  });
});

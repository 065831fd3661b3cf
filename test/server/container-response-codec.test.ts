// The ContainerWithPipeline serializer writes exactly the bytes @grpc/proto-loader's generic
// serializer writes for the same wire object, and declines (undefined) any shape it does not know;
// so does the ListContainer page serializer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import { encodeContainer, encodeContainerWithPipeline, parseContainerWithPipeline, type Wire } from '../../src/api/client-codec.js';
import { serializeContainerList, serializeContainerWithPipeline } from '../../src/api/container-response-codec.js';
import { SeededRandom } from '../../src/raft/index.js';
import type { ContainerWithPipeline } from '../../src/api/scm-api.js';
import { registerClientService } from '../../src/server/client-service.js';

const method = ScmClientServiceClient.service['AllocateContainer'] as unknown as {
  responseSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => Wire;
};

function text(rng: SeededRandom, max: number): string {
  const alphabet = ['a', 'Z', '0', '-', '.', 'é', 'ß', '€', '日', '😀'];
  let s = '';
  const n = rng.nextInt(max + 1);
  for (let i = 0; i < n; i++) s += alphabet[rng.nextInt(alphabet.length)];
  return s;
}

function number(rng: SeededRandom): number {
  const scales = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
  const base = scales[rng.nextInt(scales.length)] as number;
  return base === Number.MAX_SAFE_INTEGER ? base - rng.nextInt(1000) : base + rng.nextInt(3);
}

function randomContainerWithPipeline(rng: SeededRandom): ContainerWithPipeline {
  const states = ['OPEN', 'CLOSING', 'QUASI_CLOSED', 'CLOSED', 'DELETING', 'DELETED', 'RECOVERING'] as const;
  const pipelineStates = ['ALLOCATED', 'OPEN', 'DORMANT', 'CLOSED'] as const;
  const types = ['RATIS', 'STAND_ALONE', 'EC'] as const;
  const factors = ['ONE', 'THREE'] as const;
  const members = Array.from({ length: rng.nextInt(4) }, () => text(rng, 40));
  return {
    container: {
      containerId: number(rng),
      state: states[rng.nextInt(states.length)] as (typeof states)[number],
      pipelineId: text(rng, 40),
      usedBytes: number(rng),
      numberOfKeys: number(rng),
      stateEnterTime: number(rng),
      owner: text(rng, 200),
      deleteTransactionId: number(rng),
      sequenceId: number(rng),
      replicationType: types[rng.nextInt(types.length)] as (typeof types)[number],
      replicationFactor: factors[rng.nextInt(factors.length)] as (typeof factors)[number],
    },
    pipeline: {
      id: text(rng, 40),
      memberIds: members,
      state: pipelineStates[rng.nextInt(pipelineStates.length)] as (typeof pipelineStates)[number],
      replicationType: types[rng.nextInt(types.length)] as (typeof types)[number],
      replicationFactor: factors[rng.nextInt(factors.length)] as (typeof factors)[number],
      leaderId: text(rng, 40),
      creationTime: number(rng),
    },
    datanodes: members.map((uuid) => ({
      uuid,
      hostname: text(rng, 70),
      ipAddress: text(rng, 15),
      ports: Array.from({ length: rng.nextInt(3) }, () => ({ name: text(rng, 10), value: rng.nextInt(65536) })),
    })),
  } as ContainerWithPipeline;
}

test('writes the same bytes as the generic serializer, and they decode to the same container', () => {
  const rng = new SeededRandom(12);
  for (let i = 0; i < 2000; i++) {
    const cwp = randomContainerWithPipeline(rng);
    const wire = encodeContainerWithPipeline(cwp);
    const fast = serializeContainerWithPipeline(wire);
    assert.ok(fast !== undefined, `case ${i} declined`);
    const generic = method.responseSerialize(wire);
    assert.equal(fast.toString('hex'), generic.toString('hex'), `case ${i}: ${JSON.stringify(wire)}`);
    assert.deepEqual(parseContainerWithPipeline(method.responseDeserialize(fast)), cwp, `case ${i}`);
  }
});

test('declines what it does not know, so the generic serializer answers', () => {
  const rng = new SeededRandom(3);
  const wire = encodeContainerWithPipeline(randomContainerWithPipeline(rng));
  const container = wire['container'] as Wire;
  const variants: unknown[] = [
    undefined,
    [],
    { ...wire, extra: 1 },
    { ...wire, container: { ...container, state: 'NOT_A_STATE' } },
    { ...wire, container: { ...container, containerId: '18446744073709551615' } },
    { ...wire, container: { ...container, usedBytes: -1 } },
    { ...wire, container: { ...container, owner: 7 } },
    { ...wire, container: { ...container, newField: 'x' } },
    { ...wire, pipeline: 'p' },
  ];
  for (const v of variants) assert.equal(serializeContainerWithPipeline(v), undefined, JSON.stringify(v));
  // After declining, the next answer is still whole (nothing is left over in the scratch buffer).
  const again = serializeContainerWithPipeline(wire);
  assert.equal(again?.toString('hex'), method.responseSerialize(wire).toString('hex'));
});

test('the client service answers AllocateContainer and GetContainerWithPipeline through it', () => {
  const added: Record<string, { responseSerialize: (v: unknown) => Buffer }> = {};
  const server = { addService: (definition: typeof added) => Object.assign(added, definition) };
  registerClientService(server as never, {} as never);
  const wire = encodeContainerWithPipeline(randomContainerWithPipeline(new SeededRandom(5)));
  for (const name of ['AllocateContainer', 'GetContainerWithPipeline']) {
    const serialize = added[name]?.responseSerialize;
    assert.ok(serialize !== undefined);
    assert.equal(serialize(wire).toString('hex'), method.responseSerialize(wire).toString('hex'), name);
    assert.notEqual(serialize, method.responseSerialize, `${name} uses the fast serializer`);
  }
  // Any other shape still goes through the generic serializer.
  const other = added['AllocateContainer']?.responseSerialize({ container: {} });
  assert.equal(other?.toString('hex'), method.responseSerialize({ container: {} }).toString('hex'));
});

test('strings with lone surrogates: the generic bytes (protobufjs writes a short one its own way), or declined', () => {
  const wire = encodeContainerWithPipeline(randomContainerWithPipeline(new SeededRandom(8)));
  const container = wire['container'] as Wire;
  for (const owner of ['a\ud800', '\udc00', 'é\ud800x', '😀\ud83d', `${'x'.repeat(45)}\ud800`, 'ok 😀 é']) {
    const variant = { ...wire, container: { ...container, owner } };
    const fast = serializeContainerWithPipeline(variant);
    if (fast !== undefined) assert.equal(fast.toString('hex'), method.responseSerialize(variant).toString('hex'), JSON.stringify(owner));
  }
  // Well-formed non-ASCII is still written here.
  assert.ok(serializeContainerWithPipeline({ ...wire, container: { ...container, owner: 'ok 😀 é' } }) !== undefined);
});

const listMethod = ScmClientServiceClient.service['ListContainer'] as unknown as {
  responseSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => Wire;
};

test('writes a ListContainer page as the generic serializer does, and declines any other shape', () => {
  const rng = new SeededRandom(21);
  for (let i = 0; i < 200; i++) {
    const containers = Array.from({ length: rng.nextInt(40) }, () => encodeContainer(randomContainerWithPipeline(rng).container));
    const wire = { containers };
    const fast = serializeContainerList(wire);
    assert.ok(fast !== undefined, `case ${i} declined`);
    assert.equal(fast.toString('hex'), listMethod.responseSerialize(wire).toString('hex'), `case ${i}`);
  }
  const one = encodeContainer(randomContainerWithPipeline(rng).container);
  for (const v of [undefined, [], {}, { containers: 'x' }, { containers: [one], extra: 1 }, { containers: [{ ...one, state: 'NOT_A_STATE' }] }, { containers: [one, { ...one, newField: 1 }] }]) {
    assert.equal(serializeContainerList(v), undefined, JSON.stringify(v));
  }
  // Nothing is left over in the scratch buffer after declining.
  assert.equal(serializeContainerList({ containers: [one] })?.toString('hex'), listMethod.responseSerialize({ containers: [one] }).toString('hex'));
});

test('the client service answers ListContainer through it', () => {
  const added: Record<string, { responseSerialize: (v: unknown) => Buffer }> = {};
  const server = { addService: (definition: typeof added) => Object.assign(added, definition) };
  registerClientService(server as never, {} as never);
  const serialize = added['ListContainer']?.responseSerialize;
  assert.ok(serialize !== undefined);
  assert.notEqual(serialize, listMethod.responseSerialize, 'ListContainer uses the fast serializer');
  const wire = { containers: [encodeContainer(randomContainerWithPipeline(new SeededRandom(6)).container)] };
  assert.equal(serialize(wire).toString('hex'), listMethod.responseSerialize(wire).toString('hex'));
});

// AllocateContainerRequest without protobufjs: the client's serializer writes exactly the bytes of
// the generic (proto-loader) serializer for the same wire object, and the server's decoder returns
// exactly what the generic path (protobufjs decode + toObject, then decodeAllocateContainer) returns
// for the same bytes. Each declines (undefined) anything it is not sure of: the caller then takes
// the generic path, so errors stay the generic path's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAllocateContainer, type Wire } from '../../src/api/client-codec.js';
import { decodeAllocateContainerRequest, serializeAllocateContainerRequest } from '../../src/api/allocate-request-codec.js';
import { SeededRandom } from '../../src/raft/index.js';
import { allocateMethod as method, pick, PRINTABLE, randomAllocateBytes, randomAllocateWire, text } from './allocate-samples.js';

/** The value the generic path gives for the bytes, or the error it ends in. */
function generic(bytes: Buffer): { value: unknown } | { error: string } {
  let wire: Wire;
  try {
    wire = method.requestDeserialize(bytes);
  } catch (err) {
    return { error: `undecodable: ${(err as Error).message}` };
  }
  try {
    return { value: decodeAllocateContainer(wire) };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

test('the client serializer writes the generic bytes, and declines only shapes or values it does not know', () => {
  const rng = new SeededRandom(2026);
  let written = 0;
  for (let i = 0; i < 20_000; i++) {
    const wire = randomAllocateWire(rng);
    const fast = serializeAllocateContainerRequest(wire);
    if (fast === undefined) continue;
    written++;
    assert.equal(fast.toString('hex'), method.requestSerialize(wire).toString('hex'), `case ${i}: ${JSON.stringify(wire)}`);
  }
  assert.ok(written > 10_000, `only ${written} of 20000 written directly`);
  // What ScmClient sends in practice is always written directly.
  const wire = { clientId: 'client-3f1c', callId: '42', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' };
  assert.equal(serializeAllocateContainerRequest(wire)?.toString('hex'), method.requestSerialize(wire).toString('hex'));
  // Large and empty values are still the generic bytes.
  for (const callId of ['0', String(Number.MAX_SAFE_INTEGER)]) {
    const edge = { clientId: '', callId, replicationType: 'EC', replicationFactor: 'ONE', owner: '' };
    assert.equal(serializeAllocateContainerRequest(edge)?.toString('hex'), method.requestSerialize(edge).toString('hex'));
  }
  const declined: Wire[] = [
    { ...wire, owner: 'ö' },
    { ...wire, clientId: 'a\ud800' },
    { ...wire, callId: '18446744073709551615' },
    { ...wire, callId: -1 },
    { ...wire, replicationType: 'BOGUS' },
    { ...wire, replicationFactor: 3 },
    { ...wire, extra: 1 },
    { clientId: 'c', callId: '1', replicationType: 'RATIS', replicationFactor: 'ONE' },
  ];
  for (const w of declined) assert.equal(serializeAllocateContainerRequest(w), undefined, JSON.stringify(w));
});

test('the server decoder gives the generic value for every request it decodes, and declines the rest', () => {
  const rng = new SeededRandom(77);
  let decoded = 0;
  let declined = 0;
  for (let i = 0; i < 30_000; i++) {
    const bytes = randomAllocateBytes(rng);
    const fast = decodeAllocateContainerRequest(bytes);
    const expected = generic(bytes);
    if (fast === undefined) {
      declined++;
      continue;
    }
    decoded++;
    assert.deepEqual({ value: fast }, expected, `case ${i}: ${bytes.toString('hex')}`);
  }
  assert.ok(decoded > 4_000 && declined > 5_000, `decoded ${decoded}, declined ${declined}`);
});

test('the server decoder takes every valid request a client sends, at every limit', () => {
  const rng = new SeededRandom(5);
  for (let i = 0; i < 5_000; i++) {
    const wire: Wire = {
      clientId: pick(rng, ['c', `client-${text(rng, 36, PRINTABLE)}`, 'c'.repeat(128)]),
      callId: String(pick(rng, [1, 127, 128, 2 ** 32, Number.MAX_SAFE_INTEGER, 1 + rng.nextInt(2 ** 31)])),
      replicationType: pick(rng, ['RATIS', 'STAND_ALONE', 'EC']),
      replicationFactor: pick(rng, ['ONE', 'THREE']),
      owner: pick(rng, ['o', text(rng, 40, PRINTABLE) || 'x', '~'.repeat(256)]),
    };
    const bytes = method.requestSerialize(wire);
    const fast = decodeAllocateContainerRequest(bytes);
    assert.ok(fast !== undefined, `declined ${JSON.stringify(wire)}`);
    assert.deepEqual({ value: fast }, generic(bytes));
  }
  // One past each limit, and the values the generic path refuses, are left to it.
  const base = { clientId: 'c', callId: '1', replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' };
  for (const w of [
    { ...base, clientId: 'c'.repeat(129) },
    { ...base, owner: 'o'.repeat(257) },
    { ...base, callId: '0' },
    { ...base, callId: '9007199254740992' },
    { ...base, owner: 'a b' },
    { ...base, clientId: '' },
    { ...base, replicationType: 'REPLICATION_TYPE_UNSPECIFIED' },
  ]) {
    const bytes = method.requestSerialize(w);
    assert.equal(decodeAllocateContainerRequest(bytes), undefined, JSON.stringify(w));
    assert.ok('error' in generic(bytes), JSON.stringify(w));
  }
});

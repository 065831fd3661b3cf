// ContainerWithPipeline bytes read straight into the API's ContainerWithPipeline: for every answer it
// decodes, the value is exactly what the generic path gives (protobufjs decode + toObject with longs
// as strings, then parseContainerWithPipeline); anything else (damaged bytes, unknown fields, values
// beyond 2^53, enums the API does not know) it declines, and the client takes the generic path, so
// that path's value or error stays the answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import { encodeContainerWithPipeline, parseContainerWithPipeline, type Wire } from '../../src/api/client-codec.js';
import { decodeContainerWithPipeline } from '../../src/api/container-response-codec.js';
import { SeededRandom } from '../../src/raft/index.js';
import type { ContainerWithPipeline } from '../../src/api/scm-api.js';

const method = ScmClientServiceClient.service['AllocateContainer'] as unknown as {
  responseSerialize: (value: unknown) => Buffer;
  responseDeserialize: (bytes: Buffer) => Wire;
};

function pick<T>(rng: SeededRandom, values: readonly T[]): T {
  return values[rng.nextInt(values.length)] as T;
}

function text(rng: SeededRandom, max: number): string {
  const alphabet = ['a', 'Z', '0', '-', '.', ' ', '', 'é', 'ß', '€', '日', '😀'];
  let s = '';
  const n = rng.nextInt(max + 1);
  for (let i = 0; i < n; i++) s += pick(rng, alphabet);
  return s;
}

function number(rng: SeededRandom): number {
  const base = pick(rng, [0, 1, 127, 128, 16_384, 2 ** 31, 2 ** 32 + 5, 2 ** 49, Number.MAX_SAFE_INTEGER]);
  return base === Number.MAX_SAFE_INTEGER ? base - rng.nextInt(3) : base + rng.nextInt(3);
}

function randomContainerWithPipeline(rng: SeededRandom): ContainerWithPipeline {
  const types = ['RATIS', 'STAND_ALONE', 'EC'] as const;
  const factors = ['ONE', 'THREE'] as const;
  const members = Array.from({ length: rng.nextInt(4) }, () => text(rng, 40));
  return {
    container: {
      containerId: number(rng),
      state: pick(rng, ['OPEN', 'CLOSING', 'QUASI_CLOSED', 'CLOSED', 'DELETING', 'DELETED', 'RECOVERING'] as const),
      pipelineId: text(rng, 40),
      usedBytes: number(rng),
      numberOfKeys: number(rng),
      stateEnterTime: number(rng),
      owner: text(rng, 200),
      deleteTransactionId: number(rng),
      sequenceId: number(rng),
      replicationType: pick(rng, types),
      replicationFactor: pick(rng, factors),
    },
    pipeline: {
      id: text(rng, 40),
      memberIds: members,
      state: pick(rng, ['ALLOCATED', 'OPEN', 'DORMANT', 'CLOSED'] as const),
      replicationType: pick(rng, types),
      replicationFactor: pick(rng, factors),
      leaderId: text(rng, 40),
      creationTime: number(rng),
    },
    datanodes: members.slice(0, rng.nextInt(members.length + 1)).map((uuid) => ({
      uuid,
      hostname: text(rng, 70),
      ipAddress: text(rng, 15),
      ports: Array.from({ length: rng.nextInt(3) }, () => ({ name: text(rng, 10), value: rng.nextInt(65536) })),
    })),
  };
}

/** The wire object of an answer, sometimes with a value the API does not take or a field left out. */
function randomWire(rng: SeededRandom): Wire {
  const wire = encodeContainerWithPipeline(randomContainerWithPipeline(rng));
  if (rng.chance(0.6)) return wire;
  const container = { ...(wire['container'] as Wire) };
  const pipeline = { ...(wire['pipeline'] as Wire) };
  switch (rng.nextInt(9)) {
    case 0:
      container[pick(rng, ['containerId', 'usedBytes', 'sequenceId'])] = pick(rng, ['9007199254740992', '9007199254740993', '18446744073709551615']);
      break;
    case 1:
      pipeline['creationTime'] = '18446744073709551615';
      break;
    case 2:
      container['state'] = pick(rng, ['LIFE_CYCLE_STATE_UNSPECIFIED', 7, 42]);
      break;
    case 3:
      pipeline['state'] = pick(rng, ['PIPELINE_STATE_UNSPECIFIED', 9]);
      break;
    case 4:
      container['replicationFactor'] = pick(rng, ['REPLICATION_FACTOR_UNSPECIFIED', 2]);
      break;
    case 5:
      delete container[pick(rng, Object.keys(container))];
      break;
    case 6:
      delete pipeline[pick(rng, Object.keys(pipeline))];
      break;
    case 7:
      return pick(rng, [{ pipeline }, { container }, {}, { container, pipeline, datanodes: [{ ports: [{}] }, {}] }]);
    default:
      return { ...wire, datanodes: [{ uuid: 'u', ports: [{ name: 'p', value: pick(rng, [0, 1, 65535, 2 ** 32 - 1]) }] }] };
  }
  return { ...wire, container, pipeline };
}

function varint(v: number): number[] {
  const out: number[] = [];
  while (v > 127) {
    out.push((v % 128) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-delimited field. */
function bytesField(number: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([...varint(number * 8 + 2), ...varint(value.length)]), value]);
}

/** Rewrites the first sub-message `field` of `bytes` through `edit`. */
function editSub(bytes: Buffer, field: number, edit: (body: Buffer) => Buffer): Buffer {
  let pos = 0;
  while (pos < bytes.length) {
    const tag = bytes[pos] as number;
    let len = 0;
    let scale = 1;
    let p = pos + 1;
    for (;;) {
      const b = bytes[p++] as number;
      len += (b & 127) * scale;
      scale *= 128;
      if (b < 128) break;
    }
    if (tag === field * 8 + 2) return Buffer.concat([bytes.subarray(0, pos), bytesField(field, edit(bytes.subarray(p, p + len))), bytes.subarray(p + len)]);
    pos = p + len;
  }
  return bytes;
}

const EXTRA: Buffer[] = [
  Buffer.from([...varint(12 * 8), 5]),
  bytesField(15, Buffer.from('new')),
  Buffer.from([...varint(100 * 8), 1]),
  Buffer.from([0x0d, 1, 2, 3, 4]),
];

/** Answer bytes: the server's, damaged, or with fields or encodings the decoder does not expect. */
function randomBytes(rng: SeededRandom): Buffer {
  const bytes = method.responseSerialize(randomWire(rng));
  switch (rng.nextInt(14)) {
    case 0:
      return bytes.subarray(0, rng.nextInt(bytes.length + 1));
    case 1:
    case 2: {
      const copy = Buffer.from(bytes);
      for (let n = 1 + rng.nextInt(2); n > 0 && copy.length > 0; n--) copy[rng.nextInt(copy.length)] = rng.nextInt(256);
      return copy;
    }
    case 3:
      return Buffer.concat([bytes, pick(rng, EXTRA)]);
    case 4:
      return editSub(bytes, pick(rng, [1, 2, 3]), (body) => Buffer.concat([body, pick(rng, EXTRA)]));
    case 5:
      // A field given twice (the generic reader keeps the last, or replaces a whole message).
      return editSub(bytes, 1, (body) => Buffer.concat([body, Buffer.from([0x08, 7])]));
    case 6:
      return Buffer.concat([bytes, bytesField(pick(rng, [1, 2]), Buffer.alloc(0))]);
    case 7:
      // A wire type the field does not have; a ports entry whose value is wider than 32 bits.
      return editSub(bytes, 1, (body) => Buffer.concat([Buffer.from([0x0a, 1, 0x31]), body]));
    case 8:
      return Buffer.concat([bytes, bytesField(3, bytesField(4, Buffer.from([0x10, ...varint(2 ** 32 + 1)])))]);
    case 9:
      // Not UTF-8 in a string.
      return editSub(bytes, 2, (body) => Buffer.concat([body.subarray(0, 0), Buffer.from([0x0a, 2, 0xc3, 0x28]), body.subarray(0)]));
    default:
      return bytes;
  }
}

function generic(bytes: Buffer): { value: unknown } | { error: string } {
  try {
    return { value: parseContainerWithPipeline(method.responseDeserialize(bytes)) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

test('decodes the server\'s answers to exactly the value the generic path gives', () => {
  const rng = new SeededRandom(9);
  for (let i = 0; i < 3_000; i++) {
    const cwp = randomContainerWithPipeline(rng);
    const bytes = method.responseSerialize(encodeContainerWithPipeline(cwp));
    const fast = decodeContainerWithPipeline(bytes);
    assert.ok(fast !== undefined, `case ${i} declined: ${bytes.toString('hex')}`);
    assert.deepEqual(fast, cwp, `case ${i}`);
    assert.deepEqual({ value: fast }, generic(bytes), `case ${i}`);
  }
});

test('for damaged or unexpected bytes: the generic value when it decodes them, else it declines', () => {
  const rng = new SeededRandom(31);
  let decoded = 0;
  let declined = 0;
  for (let i = 0; i < 30_000; i++) {
    const bytes = randomBytes(rng);
    const fast = decodeContainerWithPipeline(bytes);
    if (fast === undefined) {
      declined++;
      continue;
    }
    decoded++;
    assert.deepEqual({ value: fast }, generic(bytes), `case ${i}: ${bytes.toString('hex')}`);
  }
  assert.ok(decoded > 5_000 && declined > 5_000, `decoded ${decoded}, declined ${declined}`);
});

test('values the API cannot hold, unknown fields and damaged bytes are left to the generic path', () => {
  const cwp = randomContainerWithPipeline(new SeededRandom(1));
  const wire = encodeContainerWithPipeline(cwp);
  const good = method.responseSerialize(wire);
  const cases: Buffer[] = [
    method.responseSerialize({ ...wire, container: { ...(wire['container'] as Wire), containerId: '9007199254740992' } }),
    method.responseSerialize({ ...wire, container: { ...(wire['container'] as Wire), state: 'LIFE_CYCLE_STATE_UNSPECIFIED' } }),
    method.responseSerialize({ pipeline: wire['pipeline'] }),
    Buffer.concat([good, bytesField(9, Buffer.from('x'))]),
    good.subarray(0, good.length - 1),
  ];
  for (const bytes of cases) assert.equal(decodeContainerWithPipeline(bytes), undefined, bytes.toString('hex'));
  // The largest safe integer still decodes.
  const big = { ...wire, container: { ...(wire['container'] as Wire), containerId: String(Number.MAX_SAFE_INTEGER) } };
  assert.equal(decodeContainerWithPipeline(method.responseSerialize(big))?.container.containerId, Number.MAX_SAFE_INTEGER);
});

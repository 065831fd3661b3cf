// The AllocateContainer fast path of decodeCommand against the general (protobufjs) decoder: the
// same command, fields and key order alike, for every canonical encoding; and for anything else
// (other forms, odd strings, unknown enums, damaged bytes) the same result or the same error, because
// the fast path then steps aside.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import { decodeCommand, decodeCommandGeneral, encodeCommand, type ScmCommand } from '../../src/statemachine/commands.js';
import { decodeCanonicalAllocateContainer } from '../../src/statemachine/command-decoder.js';
import { SeededRandom } from '../../src/raft/index.js';

function outcome(decode: (b: Uint8Array) => ScmCommand, bytes: Uint8Array): { ok: true; keys: string[]; cmd: ScmCommand } | { ok: false; error: string } {
  try {
    const cmd = decode(bytes);
    return { ok: true, keys: Object.keys(cmd), cmd };
  } catch (err) {
    return { ok: false, error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

function text(rng: SeededRandom, min: number, max: number, alphabet: string[]): string {
  let s = '';
  const n = min + rng.nextInt(max - min + 1);
  for (let i = 0; i < n; i++) s += alphabet[rng.nextInt(alphabet.length)];
  return s;
}

const ASCII = ['a', 'Z', '0', '-', '_', '.', ':', ' '];
const WIDE = [...ASCII, 'é', '日', '😀'];

test('canonical AllocateContainer commands decode as the general decoder decodes them, through the fast path', () => {
  const rng = new SeededRandom(21);
  const numbers = [0, 1, 127, 128, 2 ** 31, 2 ** 32 + 5, 2 ** 49 - 1, Number.MAX_SAFE_INTEGER];
  let decoded = 0;
  for (let i = 0; i < 3000; i++) {
    const cmd = {
      type: 'allocateContainer',
      clientId: text(rng, 1, 60, ASCII),
      callId: (numbers[rng.nextInt(numbers.length)] as number) || 1,
      timestamp: numbers[rng.nextInt(numbers.length)] as number,
      replicationType: (['RATIS', 'STAND_ALONE', 'EC'] as const)[rng.nextInt(3)],
      replicationFactor: (['ONE', 'THREE'] as const)[rng.nextInt(2)],
      owner: text(rng, 1, 40, ASCII),
      pipelineId: text(rng, 1, 40, ASCII),
    } as ScmCommand;
    let bytes: Uint8Array;
    try {
      bytes = encodeCommand(cmd);
    } catch {
      continue; // encodeCommand refuses it (validation); nothing to decode
    }
    assert.ok(decodeCanonicalAllocateContainer(bytes) !== undefined, `case ${i} did not take the fast path`);
    const fast = outcome(decodeCommand, bytes);
    assert.deepEqual(fast, outcome(decodeCommandGeneral, bytes), `case ${i}`);
    assert.deepEqual(fast.ok ? fast.keys : [], ['clientId', 'callId', 'timestamp', 'type', 'replicationType', 'replicationFactor', 'owner', 'pipelineId'], `case ${i}`);
    decoded++;
  }
  assert.ok(decoded > 2000, `only ${decoded} cases were valid commands`);
});

test('non-ASCII strings, unknown enums, odd forms and damaged bytes decode (or fail) exactly as before', () => {
  const rng = new SeededRandom(5);
  let tried = 0;
  for (let i = 0; i < 3000; i++) {
    const w = protobuf.Writer.create();
    const order = rng.nextInt(4) === 0 ? [3, 2, 1] : [1, 2, 3];
    for (const f of order) {
      if (rng.nextInt(20) === 0) continue; // a required field missing
      if (f === 1) w.uint32(10).string(text(rng, 0, 30, rng.nextInt(3) === 0 ? WIDE : ASCII));
      if (f === 2) w.uint32(16).uint64(rng.nextInt(4) === 0 ? '18446744073709551615' : rng.nextInt(1000));
      if (f === 3) w.uint32(24).uint64(rng.nextInt(2 ** 30));
    }
    if (rng.nextInt(10) === 0) w.uint32(16).uint64(7); // a field repeated: the last one wins
    w.uint32((10 << 3) | 2).fork();
    w.uint32(8).int32([0, 1, 2, 4, 9][rng.nextInt(5)] as number);
    w.uint32(16).int32([0, 1, 3, 7][rng.nextInt(4)] as number);
    w.uint32(26).string(text(rng, 0, 20, rng.nextInt(3) === 0 ? WIDE : ASCII));
    if (rng.nextInt(10) !== 0) w.uint32(34).string(text(rng, 0, 300, ASCII));
    if (rng.nextInt(15) === 0) w.uint32(40).uint32(1); // an unknown field
    w.ldelim();
    let bytes = w.finish();
    if (rng.nextInt(4) === 0) {
      bytes = Uint8Array.from(bytes);
      bytes[rng.nextInt(bytes.length)] = rng.nextInt(256);
    }
    if (rng.nextInt(8) === 0) bytes = bytes.subarray(0, rng.nextInt(bytes.length));
    tried++;
    assert.deepEqual(outcome(decodeCommand, bytes), outcome(decodeCommandGeneral, bytes), `case ${i}: ${Buffer.from(bytes).toString('hex')}`);
  }
  assert.equal(tried, 3000);
});

test('other commands take the general path', () => {
  const cmd: ScmCommand = { type: 'updateContainerState', clientId: 'c', callId: 1, timestamp: 5, containerId: 9, event: 'FINALIZE' };
  const bytes = encodeCommand(cmd);
  assert.equal(decodeCanonicalAllocateContainer(bytes), undefined);
  assert.deepEqual(decodeCommand(bytes), cmd);
});

test('an owner or pipeline id like the last one decoded is read afresh unless every byte is the same', () => {
  const alloc = (owner: string, pipelineId: string): ScmCommand => ({
    type: 'allocateContainer',
    clientId: 'c',
    callId: 1,
    timestamp: 5,
    replicationType: 'RATIS',
    replicationFactor: 'THREE',
    owner,
    pipelineId,
  });
  // Same length, one byte apart (first, middle, last); shorter and longer; back to the first.
  const sequence: Array<[string, string]> = [
    ['om1', 'pipeline-1'],
    ['om1', 'pipeline-1'],
    ['om2', 'pipeline-2'],
    ['xm2', 'pipelinX-2'],
    ['om', 'pipeline-'],
    ['om22', 'pipeline-22'],
    ['om1', 'pipeline-1'],
  ];
  let previous: ScmCommand | undefined;
  for (const [owner, pipelineId] of sequence) {
    const cmd = decodeCommand(encodeCommand(alloc(owner, pipelineId)));
    assert.deepEqual(cmd, alloc(owner, pipelineId));
    if (previous?.type === 'allocateContainer' && cmd.type === 'allocateContainer' && previous.owner === owner) {
      assert.ok(Object.is(previous.owner, cmd.owner));
    }
    previous = cmd;
  }
});

// Random AllocateContainer requests for the equivalence tests of the direct codec (test/api) and of
// the client service that uses it (test/server): wire objects as ScmClient builds them, sometimes
// with values or shapes it does not build, and their bytes, sometimes damaged or unusual.
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import type { Wire } from '../../src/api/client-codec.js';
import type { SeededRandom } from '../../src/raft/index.js';

export const allocateMethod = ScmClientServiceClient.service['AllocateContainer'] as unknown as {
  requestSerialize: (value: unknown) => Buffer;
  requestDeserialize: (bytes: Buffer) => Wire;
};

const method = allocateMethod;

export function pick<T>(rng: SeededRandom, values: readonly T[]): T {
  return values[rng.nextInt(values.length)] as T;
}

export function text(rng: SeededRandom, max: number, alphabet: readonly string[]): string {
  let s = '';
  const n = rng.nextInt(max + 1);
  for (let i = 0; i < n; i++) s += pick(rng, alphabet);
  return s;
}

export const PRINTABLE = ['a', 'Z', '0', '-', '.', '_', '~', '!'];
const ANY = [...PRINTABLE, ' ', '\t', 'é', 'ß', '€', '日', '😀', '\ud800', '\udc00', '\u0000', '\u007f'];

function randomString(rng: SeededRandom, limit: number): string {
  switch (rng.nextInt(6)) {
    case 0:
      return '';
    case 1:
      return text(rng, limit + 5, PRINTABLE);
    case 2:
      return text(rng, 60, ANY);
    case 3:
      return pick(rng, PRINTABLE).repeat(limit + rng.nextInt(3) - 1);
    default:
      return `x${text(rng, 40, PRINTABLE)}`;
  }
}

function randomCallId(rng: SeededRandom): unknown {
  const values = [0, 1, 2, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1];
  switch (rng.nextInt(8)) {
    case 0:
      return pick(rng, ['9007199254740992', '9007199254740993', '18446744073709551615', '007', '12345678901234567']);
    case 1:
      return pick(rng, values);
    default:
      return String(pick(rng, values) + (rng.chance(0.5) ? rng.nextInt(1000) : 0));
  }
}

const TYPES = ['RATIS', 'STAND_ALONE', 'EC', 'REPLICATION_TYPE_UNSPECIFIED', 'BOGUS', 1, 4];
const FACTORS = ['ONE', 'THREE', 'REPLICATION_FACTOR_UNSPECIFIED', 'TWO', 3];

/** A request as ScmClient builds it, sometimes with a value or a shape it does not build. */
export function randomAllocateWire(rng: SeededRandom): Wire {
  const canonical = rng.chance(0.5);
  const wire: Wire = {
    clientId: canonical ? `client-${text(rng, 36, PRINTABLE)}` : randomString(rng, 128),
    callId: canonical ? String(1 + rng.nextInt(2 ** 31)) : randomCallId(rng),
    replicationType: canonical ? pick(rng, ['RATIS', 'STAND_ALONE', 'EC']) : pick(rng, TYPES),
    replicationFactor: canonical ? pick(rng, ['ONE', 'THREE']) : pick(rng, FACTORS),
    owner: canonical ? `o${text(rng, 30, PRINTABLE)}` : randomString(rng, 256),
  };
  if (!canonical && rng.chance(0.1)) delete wire[pick(rng, Object.keys(wire))];
  if (!canonical && rng.chance(0.05)) wire['extra'] = 'x';
  return wire;
}

/** Appends a protobuf field to bytes (a varint value or length-delimited bytes). */
function field(number: number, value: number | Buffer): Buffer {
  const varint = (v: number): number[] => {
    const out: number[] = [];
    while (v > 127) {
      out.push((v % 128) | 128);
      v = Math.floor(v / 128);
    }
    out.push(v);
    return out;
  };
  if (typeof value === 'number') return Buffer.from([...varint(number * 8), ...varint(value)]);
  return Buffer.concat([Buffer.from([...varint(number * 8 + 2), ...varint(value.length)]), value]);
}

/** Bytes as a client sends them, or damaged, or with fields the decoder does not expect. */
export function randomAllocateBytes(rng: SeededRandom): Buffer {
  const bytes = method.requestSerialize(randomAllocateWire(rng));
  switch (rng.nextInt(12)) {
    case 0:
      return bytes.subarray(0, rng.nextInt(bytes.length + 1));
    case 1: {
      const copy = Buffer.from(bytes);
      if (copy.length > 0) copy[rng.nextInt(copy.length)] = rng.nextInt(256);
      return copy;
    }
    case 2:
      return Buffer.concat([bytes, field(6 + rng.nextInt(10), rng.nextInt(300))]);
    case 3:
      return Buffer.concat([bytes, field(1 + rng.nextInt(5), rng.chance(0.5) ? rng.nextInt(5) : Buffer.from('dup'))]);
    case 4:
      return Buffer.concat([field(5, Buffer.from('first')), bytes]);
    case 5:
      // An overlong varint for callId (still 1), or a value wider than 53 bits.
      return Buffer.concat([field(1, Buffer.from('c')), Buffer.from(rng.chance(0.5) ? [0x10, 0x81, 0x80, 0x00] : [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), field(3, 1), field(4, 3), field(5, Buffer.from('o'))]);
    case 6:
      return Buffer.from(Array.from({ length: rng.nextInt(20) }, () => rng.nextInt(256)));
    case 7:
      // Fields out of order, or an enum number the proto does not define.
      return Buffer.concat([field(5, Buffer.from('owner')), field(4, pick(rng, [1, 3, 2, 0])), field(3, pick(rng, [1, 2, 4, 3, 0])), field(2, 1 + rng.nextInt(9)), field(1, Buffer.from('cid'))]);
    case 8:
      // Bytes that are not UTF-8, or UTF-8 that is not ASCII, in the owner.
      return Buffer.concat([field(1, Buffer.from('cid')), field(2, 5), field(3, 1), field(4, 3), field(5, Buffer.from(pick(rng, [[0xff], [0xc3, 0xa9], [0x6f, 0x80], [0x20], [0x7f]])))]);
    default:
      return bytes;
  }
}


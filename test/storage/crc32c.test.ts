import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../src/crc32c.js';

/** Bit-at-a-time reference, independent of the slicing-by-8 tables. */
function referenceCrc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test('crc32c matches the published check value and RFC 3720 vectors', () => {
  assert.equal(crc32c(Buffer.from('123456789', 'ascii')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test('crc32c agrees with a bitwise reference at every length and alignment, and composes incrementally', () => {
  const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff);
  for (let len = 0; len <= 70; len++) {
    for (const start of [0, 1, 3, 7]) {
      const slice = data.subarray(start, start + len);
      assert.equal(crc32c(data, 0, start, start + len), referenceCrc32c(slice), `len ${len} start ${start}`);
    }
  }
  const whole = crc32c(data);
  assert.equal(crc32c(data, crc32c(data, 0, 0, 123), 123, data.length), whole);
  assert.throws(() => crc32c(data, 0, 10, 400), /outside a buffer/);
});

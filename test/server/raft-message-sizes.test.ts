// raft-message-sizes.ts: the sizes derived from a frame cap, and the property they exist for:
// the largest append the Raft log hands out under them (from memory or from the segments on disk)
// encodes (raft-codec.ts) within half the cap, and a link (peer-transport.ts) batching such appends
// writes frames a Raft stream server at the cap takes (raft-stream-server.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryLog, entrySize, MAX_RAFT_NUMBER, type LogEntry } from '../../src/raft/index.js';
import { RaftLog } from '../../src/raft/raft-log.js';
import { RaftStorage } from '../../src/storage/index.js';
import { encodeRaftMessage } from '../../src/server/raft-codec.js';
import { DEFAULT_RAFT_FRAME_BYTES, MIN_RAFT_FRAME_BYTES, raftMessageSizes, type RaftMessageSizes } from '../../src/server/raft-message-sizes.js';
import { PeerTransport } from '../../src/server/peer-transport.js';
import { RaftStreamServer } from '../../src/server/raft-stream-server.js';

const KiB = 1024;

/**
 * Sends enough copies of `message` in one turn for the link to batch them into frames of its
 * batchBytes (peer-transport.ts), to a Raft stream server whose cap is the sizes' frameBytes, and
 * waits until every copy arrived; a frame over the cap would end the stream (and lose the batch).
 */
async function deliverBatches(sizes: RaftMessageSizes, message: Uint8Array, what: string): Promise<void> {
  let received = 0;
  const refused: string[] = [];
  const server = new RaftStreamServer({
    clusterId: 'C',
    maxMessageBytes: sizes.frameBytes,
    onMessages: (_from, messages) => void (received += messages.length),
    onRefused: (reason, _peer, details) => void refused.push(`${reason}: ${details}`),
  });
  const listener = createServer((socket) => server.inject(socket));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const link = new PeerTransport({ selfId: 'a', clusterId: 'C', maxBatchBytes: sizes.batchBytes });
  try {
    link.setPeers(new Map([['b', `127.0.0.1:${(listener.address() as { port: number }).port}`]]));
    link.send('b', new Uint8Array(1));
    await until(() => received === 1 || refused.length > 0, `${what}: the stream to open`);
    const copies = Math.ceil((2 * sizes.batchBytes) / message.byteLength) + 1;
    for (let i = 0; i < copies; i++) link.send('b', message);
    link.flush();
    await until(() => received === 1 + copies || refused.length > 0, `${what}: ${copies} messages to arrive`);
    assert.deepEqual(refused, [], `${what}: ${copies} messages of ${message.byteLength} bytes`);
  } finally {
    link.close();
    server.forceShutdown();
    await new Promise((resolve) => listener.close(resolve));
  }
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; !predicate(); await new Promise((r) => setTimeout(r, 5))) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
  }
}
const MiB = 1024 * KiB;

describe('raftMessageSizes', () => {
  it('halves the cap for a batch and quarters it for an append and an entry, within the ceilings', () => {
    const rows: Array<[number, { batchBytes: number; appendEntryBytes: number; entryBytes: number }]> = [
      [64 * KiB, { batchBytes: 32 * KiB, appendEntryBytes: 16 * KiB, entryBytes: 16 * KiB }],
      [128 * KiB, { batchBytes: 64 * KiB, appendEntryBytes: 32 * KiB, entryBytes: 32 * KiB }],
      [4 * MiB + 3, { batchBytes: 2 * MiB + 1, appendEntryBytes: 1 * MiB, entryBytes: 1 * MiB }],
      [8 * MiB, { batchBytes: 4 * MiB, appendEntryBytes: 1 * MiB, entryBytes: 2 * MiB }],
      [32 * MiB, { batchBytes: 4 * MiB, appendEntryBytes: 1 * MiB, entryBytes: 8 * MiB }],
    ];
    for (const [frameBytes, expected] of rows) assert.deepEqual(raftMessageSizes(frameBytes), { frameBytes, ...expected }, `cap ${frameBytes}`);
    assert.deepEqual(raftMessageSizes(), raftMessageSizes(DEFAULT_RAFT_FRAME_BYTES));
    assert.equal(DEFAULT_RAFT_FRAME_BYTES, 32 * MiB);
  });

  it('refuses a cap under 64 KiB or not a whole number of bytes', () => {
    for (const bad of [MIN_RAFT_FRAME_BYTES - 1, 0, -1, 65_536.5, Number.NaN]) {
      assert.throws(() => raftMessageSizes(bad), new RegExp(`^RangeError: a Raft frame cap must be a whole number of bytes of at least 65536, not ${bad}$`));
    }
  });

  it('the largest appends under the sizes, from the log on disk or in memory, are at most half the cap, and a link batching them reaches a server at the cap', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'raft-message-sizes-'));
    try {
      for (const frameBytes of [MIN_RAFT_FRAME_BYTES, 128 * KiB, 3 * MiB, 32 * MiB]) {
        const sizes = raftMessageSizes(frameBytes);
        const appends: Array<{ what: string; message: Uint8Array }> = [];
        const overhead = entrySize({ term: 0, index: 0, payload: { kind: 'data', data: new Uint8Array(0) } });
        // Entries of one size each: empty ones (the encoding's overhead is all there is), allocations,
        // and the largest a proposal may make. Terms and indexes as large as they come, for the longest varints.
        for (const dataBytes of [0, 1, 107, 4 * KiB, sizes.entryBytes - overhead]) {
          const count = Math.max(2, Math.ceil((2 * sizes.appendEntryBytes) / (overhead + dataBytes)));
          const term = MAX_RAFT_NUMBER - 1;
          const first = MAX_RAFT_NUMBER - count - 1;
          const entries: LogEntry[] = Array.from({ length: count }, (_, k) => ({ term, index: first + k, payload: { kind: 'data', data: new Uint8Array(dataBytes).fill(0xff) } }));
          // What a leader sends from comes from memory (its newest entries, measured by entrySize) or
          // from its segments on disk (measured by their frames there).
          const memory = new MemoryLog();
          memory.resetToSnapshot(first - 1, term);
          memory.append(entries);
          const disk = RaftStorage.open(join(dir, `${frameBytes}-${dataBytes}`), { emptyLogStart: { firstIndex: first, prevTerm: term } });
          try {
            await disk.append(entries);
            for (const [where, reader] of [['memory', memory], ['disk', disk]] as const) {
              const slice = new RaftLog(reader, first - 1, first - 1, { index: first - 1, term }).slice(first, first + count, sizes.appendEntryBytes);
              const what = `cap ${frameBytes}, entries of ${dataBytes} bytes from ${where}`;
              assert.ok(slice.length < count, `${what}: the append took all ${count} entries, the limit was never reached`);
              const append = encodeRaftMessage({
                type: 'append',
                from: 'a-member-with-a-long-id-of-64-characters-0123456789-0123456789-x',
                to: 'another-member-with-a-long-id-of-64-characters-0123456789-012345',
                term,
                prevIndex: first - 1,
                prevTerm: term,
                entries: slice,
                commit: term,
              });
              assert.ok(append.byteLength <= frameBytes / 2, `${what}: one append of ${slice.length} entries is ${append.byteLength} bytes, over half the cap`);
              appends.push({ what, message: append });
            }
          } finally {
            await disk.close();
          }
        }
        // The smallest messages too: per message, a batch's frame adds the most prefix to them.
        if (frameBytes === MIN_RAFT_FRAME_BYTES) appends.push({ what: `cap ${frameBytes}, 8-byte messages`, message: new Uint8Array(8) });
        for (const { what, message } of appends) await deliverBatches(sizes, message, what);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// Child process of crash.test.ts: appends batches with group commit (several appends in flight
// at once) and prints "ack <index>" for each acknowledged batch until it is killed.
import { RaftStorage } from '../../src/storage/raft-storage.js';
import { crashEntry } from './crash-entries.js';

const [dir, seedText, preallocText] = process.argv.slice(2);
if (!dir || !seedText || !preallocText) throw new Error('usage: crash-child <groupDir> <seed> <preallocateBytes>');
let seed = Number(seedText) >>> 0;
const rand = (): number => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
};

const storage = RaftStorage.open(dir, { segmentSizeBytes: 32 * 1024, preallocateBytes: Number(preallocText), cacheBytes: 64 * 1024 });
process.stdout.write(`ready ${storage.lastIndex()}\n`);
let inFlight = 0;

function pump(): void {
  while (inFlight < 8) {
    const from = storage.lastIndex() + 1;
    const count = 1 + Math.floor(rand() * 20);
    const batch = [];
    for (let i = from; i < from + count; i++) batch.push(crashEntry(i));
    inFlight++;
    storage.append(batch).then(
      () => {
        inFlight--;
        process.stdout.write(`ack ${from + count - 1}\n`);
        pump();
      },
      (err: unknown) => {
        process.stderr.write(`append failed: ${String(err)}\n`);
        process.exit(2);
      },
    );
  }
}
pump();

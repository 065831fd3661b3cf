import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import { crashEntry } from './crash-entries.js';
import { tempDir } from './helpers.js';
import { mulberry32 } from '../seeded-random.js';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const ROUNDS = 24;

interface RoundResult {
  readonly startIndex: number;
  readonly maxAcked: number;
  readonly stderr: string;
}

/** Runs the child until `killAfterMs` after it is ready, then SIGKILLs it. */
function runChild(dir: string, seed: number, prealloc: number, killAfterMs: number): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(seed), String(prealloc)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    let startIndex = -1;
    let maxAcked = -1;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.stdout.on('data', (d: string) => {
      out += d;
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const [kind, value] = line.split(' ');
        if (kind === 'ready') {
          startIndex = Number(value);
          setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        } else if (kind === 'ack') {
          maxAcked = Math.max(maxAcked, Number(value));
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code ?? signal}: ${stderr}`));
      else resolve({ startIndex, maxAcked, stderr });
    });
  });
}

test('SIGKILL at random moments never loses an acknowledged entry', async () => {
  const seed = Number(process.env.STORAGE_TEST_SEED ?? Date.now() % 1_000_000);
  console.log(`crash test seed ${seed} (set STORAGE_TEST_SEED to replay)`);
  const rand = mulberry32(seed);
  const { dir, cleanup } = tempDir('crash');
  try {
    let previousLast = 0;
    let totalAcked = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const prealloc = round % 2 === 0 ? 0 : 16 * 1024;
      const killAfter = Math.floor(rand() * 250);
      const result = await runChild(dir, Math.floor(rand() * 2 ** 31), prealloc, killAfter);
      assert.equal(result.startIndex, previousLast, `round ${round}: child started where the last check ended`);
      const s = RaftStorage.open(dir, { cacheBytes: 0, segmentSizeBytes: 32 * 1024 });
      try {
        const last = s.lastIndex();
        assert.ok(last >= result.maxAcked, `round ${round}: acked ${result.maxAcked} but the log ends at ${last}`);
        assert.ok(last >= previousLast, `round ${round}: log shrank from ${previousLast} to ${last}`);
        assert.equal(s.firstIndex(), 1);
        // Contiguous prefix with the right contents (the CRC is checked on every read).
        for (let i = 1; i <= last; i += 512) {
          const batch = s.entries(i, Math.min(last, i + 511) + 1, Infinity);
          batch.forEach((e, k) => assert.deepEqual(e, crashEntry(i + k), `round ${round}: entry ${i + k}`));
        }
        totalAcked += Math.max(0, result.maxAcked - previousLast);
        previousLast = last;
      } finally {
        await s.close();
      }
    }
    assert.ok(totalAcked > 0, 'the children acknowledged some appends');
    console.log(`crash test: ${ROUNDS} kills, ${previousLast} entries survived, ${totalAcked} acknowledged during the rounds`);
  } finally {
    cleanup();
  }
});

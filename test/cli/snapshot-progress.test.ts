// The progress `scm admin snapshot save` prints while it downloads: at most a line a second, the
// bytes so far, and a share only when the SCM estimated the size (never 100% before the end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progressPrinter } from '../../src/cli/snapshot-commands.js';

test('a line a second at most, with a share of the estimate when there is one', () => {
  let clock = 0;
  const lines: string[] = [];
  const progress = progressPrinter((text) => lines.push(text), () => clock);
  const MiB = 1024 * 1024;
  progress({ bytes: MiB, estimatedTotalBytes: 10 * MiB });
  clock = 999;
  progress({ bytes: 2 * MiB, estimatedTotalBytes: 10 * MiB });
  assert.deepEqual(lines, [], 'nothing within the first second');
  clock = 1_000;
  progress({ bytes: 3 * MiB, estimatedTotalBytes: 10 * MiB });
  clock = 2_500;
  progress({ bytes: 12 * MiB, estimatedTotalBytes: 10 * MiB });
  clock = 4_000;
  progress({ bytes: 13.5 * MiB, estimatedTotalBytes: undefined });
  assert.deepEqual(lines, ['downloaded 3.0 MiB (at least 30%)\n', 'downloaded 12.0 MiB (at least 99%)\n', 'downloaded 13.5 MiB\n']);
});

// How `scm start` and `scm cluster` read SIGINT and SIGTERM: the first stops in order, the same
// Ctrl-C delivered twice (by the terminal and by npm) is still one request, a later one gives up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { onStopSignals, REPEAT_AFTER_MS } from '../../src/server/stop-signals.js';

test('one stop per request; a signal a second later gives up; none after dispose', () => {
  const source = new EventEmitter();
  let clock = 0;
  const seen: string[] = [];
  const dispose = onStopSignals({ stop: (s) => seen.push(`stop ${s}`), giveUp: (s) => seen.push(`give up ${s}`) }, () => clock, source);
  source.emit('SIGINT', 'SIGINT');
  clock += 5;
  source.emit('SIGINT', 'SIGINT'); // npm forwarding the terminal's Ctrl-C
  clock += REPEAT_AFTER_MS - 10;
  source.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(seen, ['stop SIGINT']);
  clock += 10;
  source.emit('SIGINT', 'SIGINT');
  assert.deepEqual(seen, ['stop SIGINT', 'give up SIGINT']);
  dispose();
  assert.equal(source.listenerCount('SIGINT') + source.listenerCount('SIGTERM'), 0);
});

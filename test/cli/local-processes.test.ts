// The reason `scm cluster` prints for a node that exited: read back from the node's own log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastProblem } from '../../src/cli/local-processes.js';

const line = (fields: Record<string, unknown>): string => JSON.stringify({ time: '2026-01-01T00:00:00Z', nodeId: 'scm2', ...fields });

test('the last fatal or error line, with its error when the message does not already say it', () => {
  const log = [
    line({ level: 'info', msg: 'SCM started' }),
    line({ level: 'error', msg: 'raft loop error', err: { message: 'disk full' } }),
    line({ level: 'fatal', msg: 'cannot start: port 9860 is in use', err: { message: 'port 9860 is in use' } }),
    line({ level: 'info', msg: 'SCM stopped' }),
    '',
  ].join('\n');
  assert.equal(lastProblem(log), 'cannot start: port 9860 is in use');
  assert.equal(lastProblem([line({ level: 'error', msg: 'raft loop error', err: { message: 'disk full' } })].join('\n')), 'raft loop error: disk full');
  // pino's serializer adds the causes to the error's message; the line's msg has the message already.
  const wrapped = line({ level: 'fatal', msg: 'cannot start: cannot listen on :9860: EADDRINUSE', err: { message: 'cannot listen on :9860: EADDRINUSE: EADDRINUSE' } });
  assert.equal(lastProblem(wrapped), 'cannot start: cannot listen on :9860: EADDRINUSE');
});

test('a crash before the logger existed: the last line that is not JSON; nothing to say: undefined', () => {
  assert.equal(lastProblem(`${line({ level: 'info', msg: 'x' })}\nError: Cannot find module 'tsx'\n    at resolve (node:internal)\n`), "Error: Cannot find module 'tsx'");
  assert.equal(lastProblem(`${line({ level: 'info', msg: 'SCM started' })}\n`), undefined);
  assert.equal(lastProblem(''), undefined);
});

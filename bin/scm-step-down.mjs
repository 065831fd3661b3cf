#!/usr/bin/env node
// scm-step-down: when this SCM is the Raft leader, hand the leadership to another voter, so that
// stopping it costs the quorum no election timeout. Kubernetes runs it as the preStop hook of the
// SCM container (deploy/kubernetes/statefulset.yaml); it serves as well by hand before maintenance.
//
//   node bin/scm-step-down.mjs [--http HOST:PORT] [--scm HOST:PORT[,…]] [--timeout SECONDS]
//
// It reads GET /status on this node's HTTP port (default 127.0.0.1:9876): role, nodeId and the
// members with their matchIndex. When the role is LEADER, it runs
// `scm admin scm transfer --scm ADDRESSES --new-leader-id ID --timeout SECONDS` for the other voter
// that has replicated the most; ADDRESSES are --scm, else $SCM_CLIENT_ADDRESSES, else 127.0.0.1:9860.
// Exit status 0: not the leader, no other voter, the node does not answer (nothing to hand over), or
// the transfer succeeded. 1: the transfer failed; Kubernetes then records a FailedPreStopHook event
// and stops the pod anyway, and the other voters elect a leader after the election timeout.
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { parseArgs } from 'node:util';

const STATUS_TIMEOUT_MS = 2_000;

function usage(message) {
  process.stderr.write(`scm-step-down: ${message}\nusage: scm-step-down.mjs [--http HOST:PORT] [--scm HOST:PORT[,...]] [--timeout SECONDS]\n`);
  process.exit(2);
}

/** GET http://<http>/status as JSON; rejects on a connection error, a non-200 answer or a timeout. */
function readStatus(http) {
  return new Promise((resolve, reject) => {
    const request = get(`http://${http}/status`, { timeout: STATUS_TIMEOUT_MS }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(new Error(`not JSON: ${err.message}`));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${STATUS_TIMEOUT_MS} ms`)));
    request.on('error', reject);
  });
}

/** The voter other than this node with the highest matchIndex (the leader's view), or null. */
function chooseNewLeader(status) {
  const others = (Array.isArray(status.peers) ? status.peers : []).filter((p) => p.voter === true && p.id !== status.nodeId);
  others.sort((a, b) => (b.matchIndex ?? -1) - (a.matchIndex ?? -1));
  return others[0]?.id ?? null;
}

function run(command, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      process.stderr.write(`scm-step-down: cannot run ${command}: ${err.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal !== null ? 1 : 0));
    });
  });
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      http: { type: 'string', default: '127.0.0.1:9876' },
      scm: { type: 'string' },
      timeout: { type: 'string', default: '20' },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (err) {
  usage(err.message);
}
const timeoutSeconds = Number(values.timeout);
if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) usage(`--timeout must be a whole number of seconds, got ${JSON.stringify(values.timeout)}`);
const addresses = values.scm ?? process.env.SCM_CLIENT_ADDRESSES ?? '127.0.0.1:9860';

let status;
try {
  status = await readStatus(values.http);
} catch (err) {
  process.stdout.write(`scm-step-down: no status from ${values.http} (${err.message}): nothing to hand over\n`);
  process.exit(0);
}
if (status.role !== 'LEADER') {
  process.stdout.write(`scm-step-down: ${status.nodeId} is ${status.role} (leader ${status.leaderId ?? 'unknown'}): nothing to hand over\n`);
  process.exit(0);
}
const target = chooseNewLeader(status);
if (target === null) {
  process.stdout.write(`scm-step-down: ${status.nodeId} leads with no other voter: nothing to hand over\n`);
  process.exit(0);
}
process.stdout.write(`scm-step-down: ${status.nodeId} leads term ${status.term}: transferring the leadership to ${target}\n`);
const code = await run(
  'scm',
  ['admin', 'scm', 'transfer', '--scm', addresses, '--new-leader-id', target, '--timeout', String(timeoutSeconds)],
  (timeoutSeconds + 5) * 1000,
);
if (code !== 0) process.stderr.write(`scm-step-down: the transfer to ${target} failed (exit ${code}); stopping a leader costs an election\n`);
process.exit(code === 0 ? 0 : 1);

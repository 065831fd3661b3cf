#!/usr/bin/env node
// scm-step-down: when this SCM is the Raft leader, hand the leadership to another voter, so that
// stopping it costs the quorum no election timeout. Kubernetes runs it as the preStop hook of the
// SCM container (deploy/kubernetes/statefulset.yaml); it serves as well by hand before maintenance.
//
//   node bin/scm-step-down.mjs [--http HOST:PORT | --https HOST:PORT --ca FILE [--servername NAME]]
//                              [--scm HOST:PORT[,…]] [--timeout SECONDS]
//
// It reads GET /status on this node's HTTP port (default 127.0.0.1:9876), or on its HTTPS port when
// ozone.http.policy is HTTPS_ONLY (--https, the cluster CA in --ca; the certificate must name
// --servername, else $SCM_HTTPS_SERVERNAME, else the host; for a pod, its own DNS name, as
// Kubernetes does not expand $(VAR) in a hook's command): role, nodeId and the members with their
// matchIndex. When the role is LEADER, it runs
// `scm admin scm transfer --scm ADDRESSES --new-leader-id ID --timeout SECONDS` for the other voter
// that has replicated the most; ADDRESSES are --scm, else $SCM_CLIENT_ADDRESSES, else 127.0.0.1:9860.
// Exit status 0: not the leader, no other voter, the node does not answer (nothing to hand over), or
// the transfer succeeded. 1: the transfer failed, or the HTTPS endpoint's certificate did not pass
// (a misconfiguration, never taken for "nothing to hand over"); Kubernetes then records a
// FailedPreStopHook event and stops the pod anyway, and the other voters elect a leader after the
// election timeout. The transfer itself is `scm admin`, which takes TLS and the administrator
// identity from the OZONE-SITE.XML_ variables it inherits (ozone.scm.client.x509.*).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { get as getHttps } from 'node:https';
import { parseArgs } from 'node:util';

const STATUS_TIMEOUT_MS = 2_000;

function usage(message) {
  process.stderr.write(
    `scm-step-down: ${message}\nusage: scm-step-down.mjs [--http HOST:PORT | --https HOST:PORT --ca FILE [--servername NAME]] [--scm HOST:PORT[,...]] [--timeout SECONDS]\n`,
  );
  process.exit(2);
}

/**
 * GET http(s)://<address>/status as JSON; rejects on a connection error, a certificate that does not
 * pass, a non-200 answer or a timeout. `tls`: { ca, servername } for HTTPS.
 */
function readStatus(address, tls) {
  return new Promise((resolve, reject) => {
    const onResponse = (response) => {
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
    };
    const request =
      tls === undefined
        ? get(`http://${address}/status`, { timeout: STATUS_TIMEOUT_MS }, onResponse)
        : getHttps(`https://${address}/status`, { timeout: STATUS_TIMEOUT_MS, ...tls }, onResponse);
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
      http: { type: 'string' },
      https: { type: 'string' },
      ca: { type: 'string' },
      servername: { type: 'string' },
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
if (values.http !== undefined && values.https !== undefined) usage('give --http or --https, not both');
if (values.https === undefined && (values.ca !== undefined || values.servername !== undefined)) usage('--ca and --servername go with --https');
let tls;
if (values.https !== undefined) {
  if (values.ca === undefined) usage('--https needs --ca FILE, the cluster CA that signed the node\'s certificate');
  let ca;
  try {
    ca = readFileSync(values.ca);
  } catch (err) {
    usage(`--ca: ${err.message}`);
  }
  const servername = values.servername ?? process.env.SCM_HTTPS_SERVERNAME;
  tls = { ca, ...(servername !== undefined && servername !== '' ? { servername } : {}) };
}
const statusAddress = values.https ?? values.http ?? '127.0.0.1:9876';
const where = `${tls === undefined ? 'http' : 'https'}://${statusAddress}`;

/** Errors of the TLS handshake's checks: a wrong CA, name or date is a misconfiguration to report. */
const isCertificateError = (err) =>
  typeof err.code === 'string' && (/^ERR_TLS_|^ERR_SSL_/.test(err.code) || /CERT|_SIGNATURE|ISSUER|SELF_SIGNED/.test(err.code));

let status;
try {
  status = await readStatus(statusAddress, tls);
} catch (err) {
  if (tls !== undefined && isCertificateError(err)) {
    process.stderr.write(`scm-step-down: ${where}: the node's certificate did not pass (${err.code}: ${err.message}); cannot tell whether this node leads\n`);
    process.exit(1);
  }
  process.stdout.write(`scm-step-down: no status from ${where} (${err.message}): nothing to hand over\n`);
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

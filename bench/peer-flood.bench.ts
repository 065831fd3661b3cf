// What a flood of idle connections to a peer port costs the leader: a 3-node cluster under a
// one-caller AllocateContainer load; from --at seconds on, this process opens --connections idle
// TCP connections to the leader's Ratis (or InterSCM) port and holds them for --hold seconds.
// Every --every seconds it prints the leader's file descriptors and RSS (/proc) and the allocations
// done so far; at the end, the refusals the leader counted (scm_peer_connection_refusals_total).
// Each variant starts its own cluster: by default ozone.scm.peer.max.connections as configured
// (128) and 0 (no limit, as the ports were before the limit), so the run carries its own anchor.
//
// The connections come from this process: keep --connections below its open-file limit
// (`ulimit -n`); the leader's own limit is what the unlimited variant runs into when it is lower.
//
// Usage: npm run bench:peer-flood -- [--connections N] [--port ratis|grpc] [--at S] [--hold S] [--every S] [--limits 128,0]
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchScmCluster } from './lib/scm-cluster.js';
import { ScmClient } from '../src/client/scm-client.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '15000' },
    port: { type: 'string', default: 'ratis' },
    at: { type: 'string', default: '5' },
    hold: { type: 'string', default: '20' },
    every: { type: 'string', default: '5' },
    limits: { type: 'string', default: '128,0' },
  },
});
const connections = Number(values.connections);
const portKind = values.port as 'ratis' | 'grpc';
if (portKind !== 'ratis' && portKind !== 'grpc') throw new Error(`--port must be ratis or grpc, not ${String(values.port)}`);
const [atS, holdS, everyS] = [values.at, values.hold, values.every].map(Number) as [number, number, number];
const limits = (values.limits ?? '128,0').split(',').map(Number);

const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const rssMiB = (pid: number): number => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);

function open(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('connect', () => resolve(socket));
    socket.once('close', () => resolve(socket));
  });
}

interface Row {
  readonly limit: number;
  readonly second: number;
  readonly phase: string;
  readonly fds: number;
  readonly rss: number;
  readonly allocations: number;
  readonly failures: number;
}

const rows: Row[] = [];
const refusals: string[] = [];
for (const limit of limits) {
  const cluster = await BenchScmCluster.start({ nodeEnv: { 'OZONE-SITE.XML_ozone.scm.peer.max.connections': String(limit) } });
  const flood: Socket[] = [];
  try {
    const leader = await cluster.leader();
    const pid = cluster.members()[leader - 1]!.pid!;
    const ports = cluster.harness.node(leader).ports;
    const port = portKind === 'ratis' ? ports.ratis : ports.grpc;
    const target = await cluster.target();
    const client = new ScmClient({ addresses: target.kind === 'scm' ? target.addresses : [], deadlineMs: 5_000 });
    let allocations = 0;
    let failures = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        try {
          await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'flood' });
          allocations++;
        } catch {
          failures++;
          await sleep(100);
        }
      }
    })();
    const started = Date.now();
    const sample = (phase: string): void => {
      rows.push({ limit, second: Math.round((Date.now() - started) / 1000), phase, fds: fds(pid), rss: rssMiB(pid), allocations, failures });
    };
    for (let t = 0; t < atS; t += everyS) {
      await sleep(everyS * 1000);
      sample('before');
    }
    // Opened in batches, so that the writer and the samples keep their turn.
    const opening = (async () => {
      for (let i = 0; i < connections; i += 500) flood.push(...(await Promise.all(Array.from({ length: Math.min(500, connections - i) }, () => open(port)))));
    })();
    for (let t = 0; t < holdS; t += everyS) {
      await sleep(everyS * 1000);
      sample('flood');
    }
    await opening;
    for (const s of flood) s.destroy();
    flood.length = 0;
    await sleep(everyS * 1000);
    sample('after');
    writing = false;
    await writer;
    client.close();
    const prom = await (await fetch(`http://127.0.0.1:${ports.http}/prom`)).text();
    refusals.push(`limit ${limit}: ${prom.split('\n').filter((l) => l.startsWith(`scm_peer_connection_refusals_total{port="${portKind}"`)).map((l) => l.replace(/,?scm_node_id="[^"]*"/, '')).join(', ')}`);
  } finally {
    for (const s of flood) s.destroy();
    await cluster.destroy();
  }
}

console.log(`${connections} idle connections to the leader's ${portKind} port from ${atS} s on, held ${holdS} s; one caller allocating throughout\n`);
console.log('| ozone.scm.peer.max.connections | s | phase | leader fds | leader RSS MiB | allocations | failed calls |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.limit} | ${r.second} | ${r.phase} | ${r.fds} | ${r.rss} | ${r.allocations} | ${r.failures} |`);
console.log('');
for (const line of refusals) console.log(line);

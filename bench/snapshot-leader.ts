// Leader process for bench/snapshot.bench.ts: opens the prepared scm.db, serves InterSCM download on
// 127.0.0.1:0, and reports its port, the checkpoint time, its peak RSS and its event-loop delay
// over IPC, so the leader's memory and responsiveness are measured apart from the follower's.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { Level } from 'level';
import { CheckpointProvider } from '../src/snapshot/checkpoint-provider.js';
import { registerInterScmService } from '../src/snapshot/download-service.js';

const [dbParent, clusterId, method = 'auto', gzipLevelArg = 'default'] = process.argv.slice(2);
if (method !== 'auto' && method !== 'files' && method !== 'copy') throw new Error(`checkpoint method must be auto, files or copy, got ${method}`);
if (dbParent === undefined || clusterId === undefined || process.send === undefined) {
  console.error('usage (forked with IPC): snapshot-leader.ts <dbParentDir> <clusterId> [auto|files|copy] [gzipLevel|default]');
  process.exit(2);
}
const send = process.send.bind(process);
const db = new Level<string, string>(join(dbParent, 'scm.db'));
await db.open();
const provider = new CheckpointProvider({ db: () => db, checkpointsDir: join(dbParent, 'db.checkpoints'), checkpointOptions: { method } });
let checkpointMs = 0;
let checkpointMethod = '';
const acquire = provider.acquire.bind(provider);
provider.acquire = async (id?: string) => {
  const started = performance.now();
  const lease = await acquire(id);
  checkpointMs = performance.now() - started;
  checkpointMethod = lease.checkpoint.method;
  return lease;
};
const server = new grpc.Server();
registerInterScmService(server, { clusterId, provider, ...(gzipLevelArg !== 'default' ? { gzipLevel: Number(gzipLevelArg) } : {}) });
const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));

/**
 * Anonymous resident memory (RssAnon in /proc/self/status, Linux): what the process allocated,
 * without the file-backed pages of LevelDB's memory-mapped table files, which RSS also counts.
 */
function rssAnon(): number {
  try {
    const match = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

// How long the leader's event loop was held up while serving: a transfer must never stall the
// Raft loop that shares it.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

let baselineRss = process.memoryUsage.rss();
let peakRss = baselineRss;
let baselineAnon = rssAnon();
let peakAnon = baselineAnon;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  peakAnon = Math.max(peakAnon, rssAnon());
}, 20);
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'resetPeak') {
    baselineRss = process.memoryUsage.rss();
    peakRss = baselineRss;
    baselineAnon = rssAnon();
    peakAnon = baselineAnon;
    loopDelay.reset();
    send({ event: 'reset' });
  } else if (msg.cmd === 'stats') {
    send({ event: 'stats', baselineRss, peakRss, baselineAnon, peakAnon, checkpointMs, checkpointMethod, loopDelayMaxMs: loopDelay.max / 1e6, loopDelayP99Ms: loopDelay.percentile(99) / 1e6 });
  } else if (msg.cmd === 'stop') {
    clearInterval(sampler);
    server.forceShutdown();
    void provider.removeUnused().then(() => db.close()).then(() => process.exit(0));
  }
});
send({ event: 'ready', port });

// Snapshot catch-up benchmark: a leader process with N container-like records (~200-byte values)
// serves a checkpoint; this process (the follower) downloads, extracts, verifies and installs it.
// Reports checkpoint time, tarball size, transfer MB/s, install time, total catch-up time, peak
// RSS growth of leader and follower and the leader's event-loop delay, next to `tar czf` + `tar xzf`
// of the same DB directory (issue 12's target: catch-up <= 0.5x that reference).
// Usage: npm run bench:snapshot -- [--records N] [--checkpoint-method auto|files|copy]
//          [--gzip-level 0-9] (default: the service's) [--link-mbit N] (a rate-shaped link, not loopback)
import { fork, execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { Level } from 'level';
import { SnapshotDownloader } from '../src/snapshot/snapshot-downloader.js';
import { installCheckpoint } from '../src/snapshot/installer.js';
import { formatTransactionInfo, transactionInfoTable, TRANSACTION_INFO_KEY } from '../src/statemachine/transaction-info.js';
import { encodeAppliedConfiguration, RAFT_CONFIGURATION_KEY } from '../src/statemachine/raft-configuration.js';
import { META_TABLE } from '../src/statemachine/tables.js';

const CLUSTER_ID = 'CID-00000000-0000-4000-8000-000000000bench';

function parseRecords(): number {
  const i = process.argv.indexOf('--records');
  if (i < 0) return 1_000_000;
  const n = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--records needs a positive integer, got ${JSON.stringify(process.argv[i + 1])}`);
  return n;
}

/** The leader's gzip level, or undefined for the service's default. */
function parseGzipLevel(): number | undefined {
  const i = process.argv.indexOf('--gzip-level');
  if (i < 0) return undefined;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 0 || n > 9) throw new Error(`--gzip-level needs an integer 0-9, got ${JSON.stringify(process.argv[i + 1])}`);
  return n;
}

/** Mbit/s of a shaped link between follower and leader (bench/link-proxy.ts), or undefined: loopback. */
function parseLinkMbit(): number | undefined {
  const i = process.argv.indexOf('--link-mbit');
  if (i < 0) return undefined;
  const n = Number(process.argv[i + 1]);
  if (!(n > 0)) throw new Error(`--link-mbit needs a positive number, got ${JSON.stringify(process.argv[i + 1])}`);
  return n;
}

function parseMethod(): string {
  const i = process.argv.indexOf('--checkpoint-method');
  const method = i < 0 ? 'auto' : process.argv[i + 1];
  if (method !== 'auto' && method !== 'files' && method !== 'copy') throw new Error(`--checkpoint-method needs auto, files or copy, got ${JSON.stringify(method)}`);
  return method;
}

async function populate(dir: string, records: number): Promise<void> {
  const db = new Level<string, string>(dir);
  await db.open();
  const containers = db.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  // A checkpoint must hold the Raft configuration in force at its index (the follower refuses one
  // without): three voters, as a node's scm.db records when it applies the configuration entry.
  const meta = db.sublevel<string, string>(META_TABLE, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  const voters = [1, 2, 3].map((k) => ({ id: `scm${k}`, address: `127.0.0.1:${9794 + 100 * k}`, priority: 0 }));
  await meta.put(RAFT_CONFIGURATION_KEY, encodeAppliedConfiguration({ term: 1, index: 1, voters, nonVoters: [] }));
  const BATCH = 10_000;
  for (let first = 1; first <= records; first += BATCH) {
    const batch = db.batch();
    for (let id = first; id < Math.min(first + BATCH, records + 1); id++) {
      const key = Buffer.alloc(8);
      key.writeBigUInt64BE(BigInt(id));
      const value = Buffer.alloc(200, `{"containerID":${id},"state":"CLOSED","replicationConfig":"RATIS/THREE","owner":"om1","pipelineID":"${id % 97}"}`);
      createHash('sha256').update(String(id)).digest().copy(value, 100);
      batch.put(key, value, { sublevel: containers as never });
    }
    batch.put(TRANSACTION_INFO_KEY, formatTransactionInfo({ term: 1, index: first }), { sublevel: transactionInfoTable(db) as never });
    await batch.write();
  }
  await db.close();
}

async function dirBytes(dir: string): Promise<number> {
  const out = execFileSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(out.split('\t')[0]);
}

const mb = (b: number) => (b / 1048576).toFixed(1);
const sec = (ms: number) => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  const records = parseRecords();
  const method = parseMethod();
  const gzipLevel = parseGzipLevel();
  const linkMbit = parseLinkMbit();
  const root = await mkdtemp(join(tmpdir(), 'bench-snapshot-'));
  try {
    const leaderParent = join(root, 'leader');
    const followerParent = join(root, 'follower');
    await mkdir(leaderParent, { recursive: true });
    console.log(`populating ${records} records…`);
    await populate(join(leaderParent, 'scm.db'), records);
    await populate(join(followerParent, 'scm.db'), 10);
    const dbBytes = await dirBytes(join(leaderParent, 'scm.db'));

    const leader = fork(fileURLToPath(new URL('./snapshot-leader.ts', import.meta.url)), [leaderParent, CLUSTER_ID, method, gzipLevel === undefined ? 'default' : String(gzipLevel)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    // However this process ends (a failed download too), the leader must not outlive it.
    process.once('exit', () => {
      if (leader.exitCode === null && leader.signalCode === null) leader.kill('SIGKILL');
    });
    const next = (event: string) => new Promise<Record<string, number>>((resolve) => {
      const on = (m: Record<string, number> & { event: string }) => {
        if (m.event === event) {
          leader.off('message', on);
          resolve(m);
        }
      };
      leader.on('message', on);
    });
    const { port: leaderPort } = await next('ready');
    let port = leaderPort;
    const proxy = linkMbit === undefined ? undefined : fork(fileURLToPath(new URL('./link-proxy.ts', import.meta.url)), [String(leaderPort), String(linkMbit)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    if (proxy !== undefined) {
      process.once('exit', () => {
        if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill('SIGKILL');
      });
      port = await new Promise<number>((resolve) => proxy.once('message', (m: { port: number }) => resolve(m.port)));
    }
    // The leader's event-loop delay with nothing to do, on this machine as loaded as it is now: the
    // baseline for the delay during the transfer.
    leader.send({ cmd: 'resetPeak' });
    await next('reset');
    await new Promise((r) => setTimeout(r, 1000));
    leader.send({ cmd: 'stats' });
    const idleLoop = await next('stats');
    leader.send({ cmd: 'resetPeak' });
    await next('reset');

    const followerBaseline = process.memoryUsage.rss();
    let followerPeak = followerBaseline;
    const sampler = setInterval(() => (followerPeak = Math.max(followerPeak, process.memoryUsage.rss())), 20);
    let downloadSeconds = 0;
    const started = performance.now();
    const ready = await new SnapshotDownloader({
      leaderAddress: () => `127.0.0.1:${port}`,
      expectedClusterId: CLUSTER_ID,
      snapshotDir: join(followerParent, 'snapshot'),
      deadlineMs: 3_600_000,
      log: (_l, message, fields) => {
        if (message === 'snapshot downloaded') downloadSeconds = Number(fields?.['seconds']);
        if (message === 'snapshot download progress') console.log('  progress', JSON.stringify(fields));
      },
    }).fetch(1);
    const fetched = performance.now();
    let db = new Level<string, string>(join(followerParent, 'scm.db'));
    await db.open();
    await installCheckpoint({
      dbParentDir: followerParent,
      checkpointDir: ready.dir,
      termIndex: ready.termIndex,
      closeDb: () => db.close(),
      openDb: async () => {
        db = new Level<string, string>(join(followerParent, 'scm.db'));
        await db.open();
      },
    });
    const installed = performance.now();
    clearInterval(sampler);
    await db.close();
    leader.send({ cmd: 'stats' });
    const leaderStats = (await next('stats')) as Record<string, number> & { checkpointMethod?: string };
    leader.send({ cmd: 'stop' });
    await new Promise((r) => leader.once('exit', r));
    if (proxy !== undefined) {
      proxy.send({ cmd: 'stop' });
      await new Promise((r) => proxy.once('exit', r));
    }

    // Reference: tar czf + tar xzf of the same (now closed) DB directory.
    const refTar = join(root, 'ref.tar.gz');
    const t0 = performance.now();
    execFileSync('tar', ['czf', refTar, '-C', join(leaderParent, 'scm.db'), '.']);
    const t1 = performance.now();
    await mkdir(join(root, 'ref-out'));
    execFileSync('tar', ['xzf', refTar, '-C', join(root, 'ref-out')]);
    const t2 = performance.now();
    const refTarBytes = (await stat(refTar)).size;

    const checkpointMs = leaderStats['checkpointMs'] ?? 0;
    const totalMs = installed - started;
    const refMs = t2 - t0;
    const transferMs = downloadSeconds * 1000;
    const rows: Array<[string, string]> = [
      ['records', String(records)],
      ['link', linkMbit === undefined ? 'loopback' : `${linkMbit} Mbit/s (shaped, bench/link-proxy.ts)`],
      ['gzip level (leader)', gzipLevel === undefined ? 'service default' : String(gzipLevel)],
      ['scm.db size', `${mb(dbBytes)} MiB`],
      ['checkpoint (leader)', `${sec(checkpointMs)} s (method: ${leaderStats.checkpointMethod ?? '?'})`],
      ['tarball size', `${mb(ready.downloadedBytes)} MiB`],
      // The follower extracts while it downloads: the download's time includes the extraction but
      // its tail, which the next row holds with the checks of the extracted checkpoint.
      ['download + extract (overlapped; incl. checkpoint, pack)', `${sec(transferMs)} s, ${(ready.downloadedBytes / 1048576 / Math.max(1e-3, (transferMs - checkpointMs) / 1000)).toFixed(1)} MB/s after the checkpoint`],
      ['end of extraction + verify', `${sec(fetched - started - transferMs)} s`],
      ['install', `${sec(installed - fetched)} s`],
      ['total catch-up', `${sec(totalMs)} s`],
      ['leader peak RSS growth', `${mb((leaderStats['peakRss'] ?? 0) - (leaderStats['baselineRss'] ?? 0))} MiB`],
      ['  of which anonymous (RssAnon)', `${mb((leaderStats['peakAnon'] ?? 0) - (leaderStats['baselineAnon'] ?? 0))} MiB`],
      ['leader event-loop delay max / p99 (transfer)', `${(leaderStats['loopDelayMaxMs'] ?? 0).toFixed(1)} / ${(leaderStats['loopDelayP99Ms'] ?? 0).toFixed(1)} ms`],
      ['  the same, leader idle for 1 s before it', `${(idleLoop['loopDelayMaxMs'] ?? 0).toFixed(1)} / ${(idleLoop['loopDelayP99Ms'] ?? 0).toFixed(1)} ms (what the machine's load alone costs)`],
      ['follower peak RSS growth', `${mb(followerPeak - followerBaseline)} MiB`],
      ['reference tar czf', `${sec(t1 - t0)} s (${mb(refTarBytes)} MiB)`],
      ['reference tar xzf', `${sec(t2 - t1)} s`],
      ['catch-up / reference', `${(totalMs / refMs).toFixed(2)}x (target <= 0.5x)`],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(56)} ${v}`);
    console.log(JSON.stringify({ bench: 'snapshot', records, link: linkMbit === undefined ? 'loopback' : `${linkMbit}Mbit`, gzipLevel: gzipLevel ?? 'default', dbBytes, checkpointMethod: leaderStats.checkpointMethod, checkpointMs, tarballBytes: ready.downloadedBytes, transferMs, totalMs, refCzfMs: t1 - t0, refXzfMs: t2 - t1, leaderRssGrowth: (leaderStats['peakRss'] ?? 0) - (leaderStats['baselineRss'] ?? 0), followerRssGrowth: followerPeak - followerBaseline, leaderLoopDelayMaxMs: leaderStats['loopDelayMaxMs'], leaderLoopDelayP99Ms: leaderStats['loopDelayP99Ms'], leaderIdleLoopDelayMaxMs: idleLoop['loopDelayMaxMs'], leaderIdleLoopDelayP99Ms: idleLoop['loopDelayP99Ms'] }));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();

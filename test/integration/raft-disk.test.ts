// A follower's Raft directory damaged between runs, on a real 3-node quorum of separate processes:
// - raft-meta deleted, then full of random bytes: `scm start` refuses, naming the file (it used to
//   start at term 0 with no vote, free to vote twice in a term); `scm repair raft-meta` asks the
//   running members for their terms and writes a higher one with no vote; the node rejoins;
// - acknowledged entries zeroed at the end of its log after a clean stop: dropped with a warning
//   naming the file and the index range, and sent again by the leader;
// - a stray empty log_inprogress_N: removed with a warning, not a failed start;
// - after a kill -9, zeros followed by a complete later entry in the open segment: refused, naming
//   the file and byte offset; WARN_AND_RETURN starts the node with the log cut before the zeros.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../src/cli/run.js';
import type { ScmClient } from '../../src/client/scm-client.js';
import { raftGroupDir } from '../../src/server/scm-node.js';
import { readVersionFile } from '../../src/server/version-file.js';
import { scanSegment } from '../../src/storage/segment-format.js';
import { TestCluster } from './harness.js';
import { allocate, openPipeline } from './workload.js';

function jsonLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function scm(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {} });
  return { code, out, err };
}

function segments(currentDir: string): string[] {
  return readdirSync(currentDir)
    .filter((n) => /^log_(inprogress_)?\d+(-\d+)?$/.test(n))
    .sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]));
}

/** Node k has applied everything the leader has, in node k's own words (harness.ownAppliedIndex says why). */
async function caughtUp(cluster: TestCluster, client: ScmClient, k: number): Promise<boolean> {
  const leaderApplied = Math.max(...(await client.getScmRoles()).map((r) => r.appliedIndex));
  return (await cluster.ownAppliedIndex(k)) === leaderApplied;
}

test('a follower whose raft-meta or log tail was damaged refuses or repairs as documented, and rejoins', { timeout: 420_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    await cluster.bootstrapAll();
    const client = cluster.client(cluster.allClientAddresses(), 30_000);
    await openPipeline(client, 'ONE');
    await allocate(client, 20, { factor: 'ONE' });

    const leader = await cluster.leaderIndex();
    const k = leader === 3 ? 2 : 3;
    const nodeId = cluster.node(k).ports.nodeId;
    const config = cluster.config(k);
    const currentDir = join(raftGroupDir(config, readVersionFile(config.dbDir).clusterId), 'current');
    const metaFile = join(currentDir, 'raft-meta');
    const clusterTerm = Math.max(...(await client.getScmRoles()).map((r) => r.term));
    assert.equal(await cluster.kill(k, 'SIGTERM'), 0);

    // 1. raft-meta deleted, then random bytes: refused, naming the file.
    unlinkSync(metaFile);
    cluster.start(k);
    assert.equal(await cluster.node(k).exited, 1, 'a node without raft-meta beside its log does not start');
    let fatal = jsonLines(cluster.output(k)).find((l) => l['level'] === 'fatal');
    assert.equal(fatal?.['event'], 'start_failed');
    assert.ok(String(fatal?.['msg']).includes(`${metaFile}: missing, but the Raft log`), String(fatal?.['msg']));
    assert.match(String(fatal?.['msg']), /scm repair raft-meta/);

    // raft-meta missing beside an empty log (as a snapshot install leaves it) but an scm.db that
    // has applied entries: the node has voted before, so it is refused as well.
    const aside = join(config.dbDir, '..', `${nodeId}-segments-aside`);
    mkdirSync(aside);
    for (const name of segments(currentDir)) renameSync(join(currentDir, name), join(aside, name));
    cluster.start(k);
    assert.equal(await cluster.node(k).exited, 1, 'a node without raft-meta beside an scm.db with applied entries does not start');
    fatal = jsonLines(cluster.output(k)).findLast((l) => l['level'] === 'fatal');
    assert.ok(String(fatal?.['msg']).includes(`${metaFile}: missing, but scm.db has applied entries`), String(fatal?.['msg']));
    for (const name of readdirSync(aside)) renameSync(join(aside, name), join(currentDir, name));

    writeFileSync(metaFile, randomBytes(64));
    cluster.start(k);
    assert.equal(await cluster.node(k).exited, 1, 'a node with a damaged raft-meta does not start');
    fatal = jsonLines(cluster.output(k)).findLast((l) => l['level'] === 'fatal');
    assert.ok(String(fatal?.['msg']).includes(metaFile), String(fatal?.['msg']));

    // The repair asks the two running members for their terms.
    const repair = await scm('repair', 'raft-meta', '--config', cluster.siteXml, '--node-id', nodeId);
    assert.equal(repair.code, 0, repair.err);
    assert.equal(repair.err, '');
    const wrote = /Wrote term=(\d+) with no vote\./.exec(repair.out);
    assert.ok(wrote, repair.out);
    const repairedTerm = Number(wrote[1]);
    assert.ok(repairedTerm > clusterTerm, `the new term ${repairedTerm} is above the cluster's ${clusterTerm}`);
    assert.match(repair.out, /, scm\d \d+, scm\d \d+\./, 'each other member reported its own term');
    assert.ok(readdirSync(currentDir).some((n) => n.startsWith('raft-meta.damaged-')), 'the damaged file is kept');

    // 2 and 3, for the next start: acknowledged entries zeroed at the end of the last (closed, after
    // a clean stop) segment, and a stray empty open segment.
    const last = join(currentDir, segments(currentDir).at(-1)!);
    assert.match(last, /log_\d+-\d+$/, 'a clean stop leaves every segment closed');
    const lastBytes = readFileSync(last);
    const frames = scanSegment(lastBytes).frames;
    assert.ok(frames.length >= 2, `${last} holds ${frames.length} entries`);
    const zeroFrom = frames.at(-2)!;
    const lastIndex = frames.at(-1)!.index;
    lastBytes.fill(0, zeroFrom.offset);
    writeFileSync(last, lastBytes);
    const stray = join(currentDir, 'log_inprogress_1');
    writeFileSync(stray, Buffer.alloc(0));

    cluster.start(k);
    // Its term is above the others', so its return costs an election (which it may win: its log
    // ends where theirs does).
    await cluster.waitFor(`${nodeId} to be a voter again`, 60_000, async () => {
      const roles = await client.getScmRoles();
      return roles.some((r) => r.nodeId === nodeId && (r.role === 'FOLLOWER' || r.role === 'LEADER') && r.term >= repairedTerm) && roles.some((r) => r.role === 'LEADER');
    });
    const warnings = jsonLines(cluster.output(k)).filter((l) => l['level'] === 'warn').map((l) => String(l['msg']));
    assert.ok(
      warnings.some((m) => m.includes(last) && m.includes(`entries ${zeroFrom.index}..${lastIndex} are zeros`)),
      `a warning names ${last} and ${zeroFrom.index}..${lastIndex}: ${JSON.stringify(warnings)}`,
    );
    assert.ok(warnings.some((m) => m.includes(`removed empty open segment ${stray}`)), JSON.stringify(warnings));
    assert.equal(await cluster.metric(k, 'scm_raft_log_entries_dropped_total{reason="zeroed",'), lastIndex - zeroFrom.index + 1, 'the zeroed entries are counted');
    await allocate(client, 5, { factor: 'ONE' });
    await cluster.waitFor(`${nodeId} to catch up`, 60_000, () => caughtUp(cluster, client, k));

    // 4. kill -9, then zeros followed by complete later entries in the open segment: refused.
    await allocate(client, 10, { factor: 'ONE' });
    await cluster.waitFor(`${nodeId} to hold the new entries`, 60_000, async () => {
      const open = segments(currentDir).find((n) => n.startsWith('log_inprogress_'));
      return open !== undefined && scanSegment(readFileSync(join(currentDir, open))).frames.length >= 6;
    });
    await cluster.kill(k, 'SIGKILL');
    const open = join(currentDir, segments(currentDir).find((n) => n.startsWith('log_inprogress_'))!);
    const openBytes = readFileSync(open);
    const openFrames = scanSegment(openBytes).frames;
    const hole = openFrames[2]!;
    openBytes.fill(0, hole.offset, openFrames[4]!.offset);
    writeFileSync(open, openBytes);
    cluster.start(k);
    assert.equal(await cluster.node(k).exited, 1, 'zeros followed by valid entries stop the start');
    fatal = jsonLines(cluster.output(k)).find((l) => l['level'] === 'fatal');
    assert.ok(String(fatal?.['msg']).includes(`log segment ${open} at byte offset ${hole.offset}`), String(fatal?.['msg']));
    assert.match(String(fatal?.['msg']), /zeros where entry \d+ should start, then entry \d+ complete/);

    // The operator's way on: WARN_AND_RETURN ends the log before the zeros; the leader fills it in.
    cluster.start(k, { 'OZONE-SITE.XML_ozone.scm.ha.ratis.log.corruption.policy': 'WARN_AND_RETURN' });
    await cluster.waitFor(`${nodeId} to catch up after WARN_AND_RETURN`, 60_000, () => caughtUp(cluster, client, k));
    const cutWarnings = jsonLines(cluster.output(k)).filter((l) => l['level'] === 'warn').map((l) => String(l['msg']));
    assert.ok(cutWarnings.some((m) => m.includes('WARN_AND_RETURN')), `the cut is logged as a warning naming the policy: ${JSON.stringify(cutWarnings)}`);
    assert.equal(await cluster.metric(k, 'scm_raft_log_entries_dropped_total{reason="corruption-policy",'), openFrames.length - 2, 'the entries cut by WARN_AND_RETURN are counted');
    const roles = await client.getScmRoles();
    assert.equal(roles.filter((r) => r.role === 'LEADER').length, 1);
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(30)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});

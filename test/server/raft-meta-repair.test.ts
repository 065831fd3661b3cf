// `scm repair raft-meta` and the node's check of raft-meta against scm.db: the repair never lowers
// the term (above the log, raft-meta.conf, scm.db and the peers), writes no vote, keeps a damaged
// file, and changes nothing when raft-meta is intact or the node has stored nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/run.js';
import { localClusterSiteXml } from '../../src/cli/local-cluster.js';
import { loadConfig, type ScmConfig } from '../../src/server/config.js';
import { initNode } from '../../src/server/node-setup.js';
import { raftGroupDir } from '../../src/server/scm-node.js';
import { readVersionFile } from '../../src/server/version-file.js';
import { repairRaftMeta, requireRaftMetaBesideScmDb } from '../../src/server/raft-meta-repair.js';
import { RaftMetaError, RaftStorage } from '../../src/storage/index.js';
import { ScmStateMachine } from '../../src/statemachine/index.js';
import type { LogEntry } from '../../src/log-entry.js';

interface Node {
  readonly dir: string;
  readonly siteXml: string;
  readonly config: ScmConfig;
  readonly groupDir: string;
  readonly metaFile: string;
  cleanup(): void;
}

/** An initialised scm1 of a 3-node service on ports nothing listens on. */
async function initialisedNode(): Promise<Node> {
  const dir = mkdtempSync(join(tmpdir(), 'scm-repair-'));
  const siteXml = join(dir, 'ozone-site.xml');
  // Port 1 (tcpmux) on loopback: nothing listens there, so a connection is refused at once.
  writeFileSync(siteXml, localClusterSiteXml(3, 1, dir));
  const config = loadConfig({ siteXmlPath: siteXml, env: {}, overrides: { 'ozone.scm.node.id': 'scm1' } });
  await initNode(config);
  const groupDir = raftGroupDir(config, readVersionFile(config.dbDir).clusterId);
  return { dir, siteXml, config, groupDir, metaFile: join(groupDir, 'current', 'raft-meta'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function entries(from: number, to: number, term: number): LogEntry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term, payload: { kind: 'data', data: new Uint8Array([1, 2, 3]) } }));
}

async function withLog(node: Node, meta: { term: number; votedFor: string }, log: LogEntry[]): Promise<void> {
  const s = RaftStorage.open(node.groupDir);
  await s.saveMeta(meta.term, meta.votedFor);
  if (log.length > 0) await s.append(log);
  await s.close();
}

async function scm(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {} });
  return { code, out, err };
}

async function readMetaAfter(node: Node): Promise<{ term: number; votedFor: string }> {
  const s = RaftStorage.open(node.groupDir);
  try {
    return s.readMeta();
  } finally {
    await s.close();
  }
}

test('repair raft-meta: a deleted raft-meta beside a log becomes the log\'s highest term + 1 with no vote', async () => {
  const node = await initialisedNode();
  try {
    await withLog(node, { term: 4, votedFor: 'scm2' }, [...entries(1, 5, 2), ...entries(6, 9, 4)]);
    unlinkSync(node.metaFile);
    assert.throws(() => RaftStorage.open(node.groupDir), RaftMetaError);
    // --offline alone would have to guess the term this node voted in: refused.
    const guess = await scm('repair', 'raft-meta', '--config', node.siteXml, '--node-id', 'scm1', '--offline');
    assert.equal(guess.code, 2);
    assert.match(guess.err, /--offline needs --peer-term TERM/);
    assert.throws(() => RaftStorage.open(node.groupDir), RaftMetaError, 'nothing was written');
    const r = await scm('repair', 'raft-meta', '--config', node.siteXml, '--node-id', 'scm1', '--offline', '--peer-term', '3');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`${node.metaFile}: missing, but the Raft log .* holds entries 1\\.\\.9`));
    assert.match(r.out, /Highest terms: log 4 \(last index 9\), raft-meta\.conf 0, scm\.db 0, other members not asked \(--offline\), --peer-term 3\./);
    assert.match(r.out, /Wrote term=5 with no vote\./);
    assert.deepEqual(await readMetaAfter(node), { term: 5, votedFor: '' });
    // Run again: intact now, nothing is written.
    const again = await scm('repair', 'raft-meta', '--config', node.siteXml, '--node-id', 'scm1', '--offline', '--peer-term', '3');
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /is intact \(term 5, no vote\)\. Nothing to repair\./);
  } finally {
    node.cleanup();
  }
});

test('repair raft-meta: a damaged file is kept aside; the term is above raft-meta.conf, scm.db and --peer-term', async () => {
  const node = await initialisedNode();
  try {
    await withLog(node, { term: 3, votedFor: 'scm3' }, entries(1, 4, 3));
    // raft-meta.conf from a later term than the log's last entry (a configuration committed later).
    const s = RaftStorage.open(node.groupDir);
    await s.saveConf({ index: 4, term: 9, payload: { kind: 'config', peers: [{ id: 'scm1', address: 'h:1', priority: 0 }], listeners: [] } });
    await s.close();
    const damaged = Buffer.from([0x8f, 0x00, 0x13, 0x37, 0xfe, 0x0a]);
    writeFileSync(node.metaFile, damaged);

    const conf = await repairRaftMeta(node.config, { now: new Date('2024-05-01T10:20:30.456Z') });
    assert.equal(conf.outcome, 'repaired');
    assert.ok(conf.outcome === 'repaired');
    assert.equal(conf.term, 10);
    assert.match(conf.problem, /not UTF-8/);
    assert.equal(conf.keptAs, `${node.metaFile}.damaged-20240501T102030Z`);
    assert.deepEqual(readFileSync(conf.keptAs), damaged);

    writeFileSync(node.metaFile, 'term=banana\nvotedFor=\n');
    // Nobody answers (nothing listens): the term this node voted in may be known only there.
    const silent = await scm('repair', 'raft-meta', '--config', node.siteXml, '--node-id', 'scm1');
    assert.equal(silent.code, 1);
    assert.match(silent.err, /raft-meta not repaired: scm2 \(127\.0\.0\.1:\d+\), scm3 \(127\.0\.0\.1:\d+\) did not answer/);
    assert.equal(readFileSync(node.metaFile, 'utf8'), 'term=banana\nvotedFor=\n', 'nothing was written');
    const peers = await scm('repair', 'raft-meta', '--config', node.siteXml, '--node-id', 'scm1', '--peer-term', '40');
    assert.equal(peers.code, 0, peers.err);
    assert.equal(peers.err, '');
    assert.match(peers.out, /term "banana" is not a non-negative integer/);
    assert.match(peers.out, /scm2 no answer, scm3 no answer, --peer-term 40\./);
    assert.match(peers.out, /Wrote term=41 with no vote\./);
    assert.deepEqual(await readMetaAfter(node), { term: 41, votedFor: '' });
    assert.equal(readdirSync(join(node.groupDir, 'current')).filter((n) => n.startsWith('raft-meta.damaged-')).length, 2);
  } finally {
    node.cleanup();
  }
});

test('an empty log beside an scm.db that applied entries: the node check refuses, the repair goes above scm.db', async () => {
  const node = await initialisedNode();
  try {
    // As after a snapshot install: scm.db at 12#30, the log reset to start after it, raft-meta lost.
    const sm = await ScmStateMachine.open(join(node.config.dbDir, 'scm.db'));
    const conf = { kind: 'config', peers: [{ id: 'scm1', address: 'h:1', priority: 0 }], listeners: [] } as const;
    await sm.applyBatch(Array.from({ length: 30 }, (_, i) => ({ index: i + 1, term: i < 20 ? 11 : 12, payload: conf })));
    const applied = sm.lastApplied();
    await sm.close();
    assert.deepEqual(applied, { term: 12, index: 30 });

    const storage = RaftStorage.open(node.groupDir);
    assert.equal(storage.hasMetaFile(), false, 'the storage alone sees a fresh node');
    assert.throws(
      () => requireRaftMetaBesideScmDb(storage, applied),
      (err: Error) => err instanceof RaftMetaError && err.file === node.metaFile && /missing, but scm\.db has applied entries up to 12#30/.test(err.message),
    );
    requireRaftMetaBesideScmDb(storage, { term: 0, index: 0 }); // a fresh node starts
    await storage.close();

    const repaired = await repairRaftMeta(node.config);
    assert.ok(repaired.outcome === 'repaired');
    assert.equal(repaired.keptAs, undefined);
    assert.equal(repaired.term, 13);
    const again = RaftStorage.open(node.groupDir);
    requireRaftMetaBesideScmDb(again, applied);
    assert.deepEqual(again.readMeta(), { term: 13, votedFor: '' });
    await again.close();
  } finally {
    node.cleanup();
  }
});

test('repair raft-meta changes nothing on a fresh node and refuses while the node runs', async () => {
  const node = await initialisedNode();
  try {
    const fresh = await repairRaftMeta(node.config);
    assert.equal(fresh.outcome, 'fresh');
    assert.equal(existsSync(node.metaFile), false);
    const running = RaftStorage.open(node.groupDir);
    const r = await scm('repair', 'raft-meta', '--config', node.siteXml, '--node-id', 'scm1', '--offline', '--peer-term', '0');
    assert.equal(r.code, 1);
    assert.match(r.err, /is already open in this process|in use by pid/);
    await running.close();
  } finally {
    node.cleanup();
  }
});

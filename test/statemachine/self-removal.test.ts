// A node's record of its own removal from the Raft group (meta/removedFromGroup): written in the
// batch of the configuration that removed it, deleted in the batch of one that holds it again,
// carried across a snapshot install, never written for a node that was not a member yet, and left
// out of the replicated state's digest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ScmStateMachine } from '../../src/statemachine/index.js';
import { META_TABLE, openTables } from '../../src/statemachine/tables.js';
import type { LogEntry, RaftPeer } from '../../src/log-entry.js';
import { withTempDir } from './helpers.js';

const peer = (id: string): RaftPeer => ({ id, address: `${id}:9894`, priority: 0 });
const config = (index: number, voters: string[], nonVoters: string[] = []): LogEntry => ({
  term: 1,
  index,
  payload: { kind: 'config', peers: voters.map(peer), listeners: nonVoters.map(peer) },
});
const noop = (index: number): LogEntry => ({ term: 1, index, payload: { kind: 'data', data: new Uint8Array() } });

/** The record as scm.db holds it (read raw, not through the state machine's own view). */
async function storedRecord(sm: ScmStateMachine): Promise<unknown> {
  const text = (await openTables(sm.db).meta.get('removedFromGroup')) as string | undefined;
  return text === undefined ? undefined : JSON.parse(text);
}

test('the configuration that removes this node records it in its own batch; a reopen keeps it', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'scm.db');
    let sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
    try {
      await sm.applyBatch([config(1, ['scm1', 'scm2', 'scm3']), noop(2), config(3, ['scm1', 'scm2']), noop(4)]);
      assert.deepEqual(await storedRecord(sm), { nodeId: 'scm3', term: 1, index: 3 });
      await sm.close();
      sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
      assert.deepEqual(sm.removal(), { nodeId: 'scm3', term: 1, index: 3 });
      // Later configurations without it keep the first removal's index.
      await sm.applyBatch([config(5, ['scm1', 'scm2', 'scm4'])]);
      assert.deepEqual(sm.removal(), { nodeId: 'scm3', term: 1, index: 3 });
    } finally {
      await sm.close();
    }
  });
});

test('a non-voter (a joining member) removed before its promotion is recorded as removed too', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'), { selfId: 'scm3' });
    try {
      await sm.applyBatch([config(1, ['scm1', 'scm2']), config(2, ['scm1', 'scm2'], ['scm3']), config(3, ['scm1', 'scm2'])]);
      assert.deepEqual(await storedRecord(sm), { nodeId: 'scm3', term: 1, index: 3 });
    } finally {
      await sm.close();
    }
  });
});

test('configurations that never held this node record nothing: a bootstrapped node catching up is not removed', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'), { selfId: 'scm4' });
    try {
      await sm.applyBatch([config(1, ['scm1']), config(2, ['scm1', 'scm2']), config(3, ['scm1', 'scm2', 'scm3']), config(4, ['scm1', 'scm3'])]);
      assert.equal(await storedRecord(sm), undefined);
      assert.equal(sm.removal(), undefined);
    } finally {
      await sm.close();
    }
  });
});

test('a configuration holding the node again (an administrator added it back) deletes the record in its batch', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'scm.db');
    let sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
    try {
      await sm.applyBatch([config(1, ['scm1', 'scm2', 'scm3']), config(2, ['scm1', 'scm2'])]);
      assert.notEqual(await storedRecord(sm), undefined);
      await sm.applyBatch([noop(3), config(4, ['scm1', 'scm2'], ['scm3'])]);
      assert.equal(await storedRecord(sm), undefined);
      await sm.close();
      sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
      assert.equal(sm.removal(), undefined);
    } finally {
      await sm.close();
    }
  });
});

test('the record is the removed node\'s own: the others write none, and the digest leaves it out', async () => {
  await withTempDir(async (dir) => {
    const entries = [config(1, ['scm1', 'scm2', 'scm3']), noop(2), config(3, ['scm1', 'scm2'])];
    const removed = await ScmStateMachine.open(join(dir, 'scm3.db'), { selfId: 'scm3' });
    const staying = await ScmStateMachine.open(join(dir, 'scm1.db'), { selfId: 'scm1' });
    try {
      await removed.applyBatch(entries);
      await staying.applyBatch(entries);
      assert.notEqual(await storedRecord(removed), undefined);
      assert.equal(await storedRecord(staying), undefined);
      assert.equal(await removed.digest(), await staying.digest());
    } finally {
      await removed.close();
      await staying.close();
    }
  });
});

/** A leader's scm.db after `entries`, to install as a checkpoint. */
async function checkpointAfter(dir: string, entries: LogEntry[]): Promise<string> {
  const path = join(dir, 'checkpoint.db');
  await rm(path, { recursive: true, force: true });
  const leader = await ScmStateMachine.open(path, { selfId: 'scm1' });
  await leader.applyBatch(entries);
  await leader.close();
  return path;
}

/** What the installer does to scm.db: the checkpoint's files in its place, then a reload. */
async function install(sm: ScmStateMachine, checkpoint: string): Promise<void> {
  await sm.close();
  await rm(sm.dbDir, { recursive: true, force: true });
  await cp(checkpoint, sm.dbDir, { recursive: true });
  await sm.reload();
}

test('installing a checkpoint whose configuration lacks this node, over one that held it, records the removal in the new scm.db', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'scm.db');
    let sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
    try {
      await sm.applyBatch([config(1, ['scm1', 'scm2', 'scm3']), noop(2)]);
      await install(sm, await checkpointAfter(dir, [config(1, ['scm1', 'scm2', 'scm3']), noop(2), config(3, ['scm1', 'scm2']), noop(4), noop(5)]));
      assert.equal(sm.lastApplied().index, 5);
      assert.deepEqual(await storedRecord(sm), { nodeId: 'scm3', term: 1, index: 3 });
      await sm.close();
      sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
      assert.deepEqual(sm.removal(), { nodeId: 'scm3', term: 1, index: 3 });
    } finally {
      await sm.close();
    }
  });
});

test('after a removal, a checkpoint from before the re-add keeps the record and one after it clears it', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'), { selfId: 'scm3' });
    const history = [config(1, ['scm1', 'scm2', 'scm3']), config(2, ['scm1', 'scm2']), noop(3), noop(4), config(5, ['scm1', 'scm2'], ['scm3']), noop(6)];
    try {
      await sm.applyBatch(history.slice(0, 2));
      await install(sm, await checkpointAfter(dir, history.slice(0, 4)));
      assert.deepEqual(await storedRecord(sm), { nodeId: 'scm3', term: 1, index: 2 }, 'still out: the checkpoint predates the re-add');
      await install(sm, await checkpointAfter(dir, history));
      assert.equal(await storedRecord(sm), undefined, 'the checkpoint holds the re-add');
    } finally {
      await sm.close();
    }
  });
});

test('a bootstrapped node installing a checkpoint without itself records nothing', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'), { selfId: 'scm4' });
    try {
      await install(sm, await checkpointAfter(dir, [config(1, ['scm1', 'scm2', 'scm3']), noop(2)]));
      assert.equal(await storedRecord(sm), undefined);
    } finally {
      await sm.close();
    }
  });
});

test('an install deletes a record naming another node that the checkpoint carried', async () => {
  await withTempDir(async (dir) => {
    // scm9's scm.db, with scm9's record of its own removal, served as a checkpoint (as a backup or
    // a copied directory could be).
    const checkpoint = join(dir, 'scm9.db');
    const scm9 = await ScmStateMachine.open(checkpoint, { selfId: 'scm9' });
    await scm9.applyBatch([config(1, ['scm1', 'scm3', 'scm9']), noop(2), config(3, ['scm1', 'scm3']), noop(4)]);
    assert.deepEqual(await storedRecord(scm9), { nodeId: 'scm9', term: 1, index: 3 });
    await scm9.close();
    const path = join(dir, 'scm.db');
    let sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
    try {
      await sm.applyBatch([config(1, ['scm1', 'scm3', 'scm9'])]);
      await install(sm, checkpoint);
      assert.equal(sm.lastApplied().index, 4);
      assert.equal(sm.removal(), undefined);
      assert.equal(await storedRecord(sm), undefined, 'the record naming scm9 is gone from this node\'s scm.db');
      await sm.close();
      sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
      assert.equal(await storedRecord(sm), undefined);
    } finally {
      await sm.close();
    }
  });
});

test('a record naming another node (as a checkpoint could carry) is not this node\'s', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'scm.db');
    const other = await ScmStateMachine.open(path, { selfId: 'scm9' });
    await other.applyBatch([config(1, ['scm1', 'scm9']), config(2, ['scm1'])]);
    assert.notEqual(await storedRecord(other), undefined);
    await other.close();
    const sm = await ScmStateMachine.open(path, { selfId: 'scm3' });
    try {
      assert.equal(sm.removal(), undefined);
    } finally {
      await sm.close();
    }
    // And a damaged record is an error naming it, not "never removed".
    const raw = await ScmStateMachine.open(path);
    await raw.db.sublevel<string, string>(META_TABLE, { keyEncoding: 'utf8', valueEncoding: 'utf8' }).put('removedFromGroup', '{"nodeId":"scm3","term":1}');
    await raw.close();
    await assert.rejects(ScmStateMachine.open(path, { selfId: 'scm3' }), /meta\/removedFromGroup: index must be a non-negative integer/);
  });
});

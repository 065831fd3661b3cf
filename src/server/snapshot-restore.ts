// `scm restore --from FILE`: builds the directories of a new single-node SCM from a saved checkpoint,
// as `etcdctl snapshot restore` builds a new member: scm.db from the checkpoint, VERSION, and a Raft
// group holding this node alone. The other nodes then join it with `scm bootstrap` and `scm start`.
//
// The configuration. The checkpoint carries the configuration in force at its index (usually the
// old three voters, in scm.db's meta/raftConfiguration). The restored group must start with this
// node alone, and must never adopt the old voters, neither at start-up nor by serving a checkpoint
// to a joining node. So the restore is a configuration change at the checkpoint's own position
// (term T, index I): raft-meta.conf gets a configuration entry [this node] at T#I, and scm.db's
// meta/raftConfiguration is rewritten to the same configuration at T#I. I is the highest index the
// configuration can claim (the log starts right after I, every entry up to I is in the checkpoint)
// and is at or above the old configuration's index, so start-up (raft-boot.ts: the newer of
// raft-meta.conf and scm.db by index, raft-meta.conf on a tie) takes it whichever it reads, and a
// checkpoint this node serves before the first membership change carries it too.
//
// The cluster id. By default the restored node keeps the checkpoint's clusterID: the datanodes and
// clients of the cluster know it, and the Raft group directory is named after it. `newClusterId`
// gives a fresh one instead (etcd's restore always does), for a copy that must never be mistaken
// for the original, e.g. a test cluster built from production data.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { fsyncPath } from '../durable-fs.js';
import { RaftStorage } from '../storage/index.js';
import { SCM_DB_NAME } from '../snapshot/index.js';
import { encodeAppliedConfiguration, openTables, RAFT_CONFIGURATION_KEY, type AppliedConfiguration, type LogEntry, type TermIndex } from '../statemachine/index.js';
import { requireSelf, type ScmConfig } from './config.js';
import { extractVerifiedCheckpoint } from './checkpoint-file.js';
import { raftGroupDir } from './scm-node.js';
import { createVersionInfo, newClusterId, readVersionFileIfExists, versionFilePath, writeVersionFile } from './version-file.js';

export interface RestoreRequest {
  /** This node's configuration: its id, address and directories. */
  readonly config: ScmConfig;
  readonly file: string;
  /** A new clusterID instead of the checkpoint's. */
  readonly newClusterId?: boolean;
}

export interface RestoreResult {
  readonly nodeId: string;
  readonly clusterId: string;
  /** The cluster the checkpoint was taken from. */
  readonly snapshotClusterId: string;
  readonly termIndex: TermIndex;
  /** The configuration the checkpoint held (the old group). */
  readonly previousConfiguration: AppliedConfiguration;
  readonly dbDir: string;
  readonly groupDir: string;
}

async function nonEmpty(path: string): Promise<boolean> {
  try {
    const s = await stat(path);
    return !s.isDirectory() || (await readdir(path)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Refuses to touch a node that has data: a restore builds a new node. */
async function requireEmptyNode(config: ScmConfig, groupDir: string): Promise<void> {
  const held = [
    readVersionFileIfExists(config.dbDir) !== null ? versionFilePath(config.dbDir) : undefined,
    (await nonEmpty(join(config.dbDir, SCM_DB_NAME))) ? join(config.dbDir, SCM_DB_NAME) : undefined,
    (await nonEmpty(groupDir)) ? groupDir : undefined,
  ].filter((path): path is string => path !== undefined);
  if (held.length > 0) {
    throw new Error(
      `refusing to restore over an existing SCM: ${held.join(', ')} already exist${held.length === 1 ? 's' : ''}. ` +
        'A restore builds a new node in empty directories: move them away, or point ozone.scm.db.dirs and ozone.scm.ratis.storage.dir elsewhere',
    );
  }
}

async function writeConfiguration(dbDir: string, configuration: AppliedConfiguration): Promise<void> {
  const db = new Level<string, string>(dbDir, { createIfMissing: false });
  await db.open();
  try {
    await openTables(db).meta.put(RAFT_CONFIGURATION_KEY, encodeAppliedConfiguration(configuration));
  } finally {
    await db.close();
  }
}

export async function restoreFromCheckpoint(request: RestoreRequest): Promise<RestoreResult> {
  const { config } = request;
  const self = requireSelf(config);
  await mkdir(config.dbDir, { recursive: true });
  // The checkpoint is checked before anything is decided from it (its cluster id names the group).
  const work = join(config.dbDir, `restore.${randomBytes(4).toString('hex')}.tmp`);
  const checkpoint = await extractVerifiedCheckpoint(request.file, work);
  try {
    const clusterId = request.newClusterId === true ? newClusterId() : checkpoint.clusterId;
    const groupDir = raftGroupDir(config, clusterId);
    await requireEmptyNode(config, groupDir);
    const { term, index } = checkpoint.termIndex;
    const alone = [{ id: self.nodeId, address: self.ratisAddress, priority: 0 }];
    await writeConfiguration(checkpoint.dir, { term, index, voters: alone, nonVoters: [] });

    // The group first, then scm.db, then VERSION: until VERSION exists `scm start` refuses to run,
    // so a restore that stops half-way leaves a node that cannot start, never a wrong one.
    const storage = RaftStorage.open(groupDir);
    try {
      const entry: LogEntry = { term, index, payload: { kind: 'config', peers: alone, listeners: [] } };
      await storage.saveConf(entry);
      // raft-meta's term must not be below the last term the log (which starts after T#I) holds.
      await storage.saveMeta(term, '');
    } finally {
      await storage.close();
    }
    // Start-up sees an empty log beside scm.db at T#I and starts the log right after I, as after a
    // snapshot install (log-reconcile.ts); nothing to write for it here.
    await rename(checkpoint.dir, join(config.dbDir, SCM_DB_NAME));
    await fsyncPath(config.dbDir);
    await writeVersionFile(config.dbDir, createVersionInfo({ clusterId }));
    return {
      nodeId: self.nodeId,
      clusterId,
      snapshotClusterId: checkpoint.clusterId,
      termIndex: checkpoint.termIndex,
      previousConfiguration: checkpoint.configuration,
      dbDir: config.dbDir,
      groupDir,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

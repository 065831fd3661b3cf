// Whether another process runs a node on these directories, asked before starting one (`scm
// cluster` checks every node before it starts any): the same in_use.lock test the node's own
// storage makes at start-up, so the answer cannot differ from what the node would find. A lock
// left by a process that is gone is taken over and released, as a start would.
import { existsSync } from 'node:fs';
import { InUseLock } from '../storage/in-use-lock.js';
import type { ScmConfig } from './config.js';
import { raftGroupDir } from './scm-node.js';
import { readVersionFileIfExists } from './version-file.js';

/** Throws StorageLockedError (naming the pid and the lock file) when a live process holds the node's lock. */
export function assertNodeNotRunning(config: ScmConfig): void {
  const version = readVersionFileIfExists(config.dbDir);
  if (version === null) return;
  const groupDir = raftGroupDir(config, version.clusterId);
  if (!existsSync(groupDir)) return;
  InUseLock.acquire(groupDir, () => undefined).release();
}

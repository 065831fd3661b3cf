// `scm repair raft-meta`: a new raft-meta for a stopped node whose raft-meta is missing or damaged
// (RaftMetaError), and the start-up check the node makes once scm.db is open.
//
// raft-meta records the highest term the node has seen and its vote in it. Once lost, neither can
// be read back, so the repair never guesses a vote: it writes no vote, in a term above every term
// the node can have voted in. A vote in term t went to a candidate of term t, so t is at most the
// highest term anywhere: in this node's log, raft-meta.conf and scm.db, and in the running peers
// (the CLI asks them). The new term is one above the highest of those, so the term never goes down
// and no vote of the old term can be cast again. A term higher than needed costs one election.
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { RaftMetaError, RaftStorage, META_FILE_NAME } from '../storage/index.js';
import { ScmStateMachine } from '../statemachine/index.js';
import type { TermIndex } from '../log-entry.js';
import { recoverInterruptedInstall, SCM_DB_NAME } from '../snapshot/index.js';
import type { ScmConfig } from './config.js';
import { raftGroupDir, readVersionFile } from './version-file.js';

/** The terms the repair takes into account (0 where a source has none). */
export interface TermEvidence {
  /** Term of the last entry in the log (terms never go down along the log). */
  readonly log: number;
  readonly logLastIndex: number;
  /** Term of the configuration entry in raft-meta.conf. */
  readonly conf: number;
  /** Term of the last entry scm.db applied (#TRANSACTIONINFO). */
  readonly scmDb: number;
  /** The highest term the running peers report, when asked. */
  readonly peers: number | undefined;
}

export type RaftMetaRepairResult =
  /** raft-meta was missing or damaged; a new one was written. */
  | {
      readonly outcome: 'repaired';
      readonly metaFile: string;
      readonly problem: string;
      /** Where the damaged file was kept, when there was one. */
      readonly keptAs: string | undefined;
      readonly evidence: TermEvidence;
      readonly term: number;
      /** Repairs of the log that opening it made (a torn tail cut …), as start-up would. */
      readonly warnings: readonly string[];
    }
  /** raft-meta reads back fine: nothing was written. */
  | { readonly outcome: 'intact'; readonly metaFile: string; readonly term: number; readonly votedFor: string }
  /** No raft-meta, no log, nothing applied: a node that has stored nothing starts at term 0. */
  | { readonly outcome: 'fresh'; readonly metaFile: string };

export interface RaftMetaRepairOptions {
  /** The highest term the other members report (undefined: not asked, or none answered). */
  readonly peerTerm?: number;
  /** Now, for the name of the kept copy of a damaged file. */
  readonly now?: Date;
}

/**
 * The check the node makes once scm.db is open: the storage refuses a missing raft-meta beside a
 * log with entries, but cannot see scm.db. An empty log (a snapshot install resets it) beside an
 * scm.db that has applied entries means the node has run and raft-meta is lost.
 */
export function requireRaftMetaBesideScmDb(storage: Pick<RaftStorage, 'hasMetaFile' | 'groupDir'>, applied: TermIndex): void {
  if (storage.hasMetaFile() || applied.index === 0) return;
  throw missingBesideScmDb(join(storage.groupDir, 'current', META_FILE_NAME), applied);
}

function missingBesideScmDb(metaFile: string, applied: TermIndex): RaftMetaError {
  return new RaftMetaError(
    metaFile,
    'missing',
    `missing, but scm.db has applied entries up to ${applied.term}#${applied.index}: the term and vote this node promised are lost, ` +
      'and starting from term 0 could make it vote twice in one term',
  );
}

async function appliedInScmDb(dbDir: string): Promise<TermIndex> {
  if (!existsSync(join(dbDir, SCM_DB_NAME))) return { term: 0, index: 0 };
  // As start-up does: an install interrupted by a crash is finished or rolled back first.
  await recoverInterruptedInstall(dbDir);
  const sm = await ScmStateMachine.open(join(dbDir, SCM_DB_NAME));
  try {
    return sm.lastApplied();
  } finally {
    await sm.close();
  }
}

function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * Repairs raft-meta of the node `config` names. The node must be stopped (in_use.lock says so).
 * Writes nothing when raft-meta is intact, or absent on a node that has stored nothing.
 */
export async function repairRaftMeta(config: ScmConfig, options: RaftMetaRepairOptions = {}): Promise<RaftMetaRepairResult> {
  if (options.peerTerm !== undefined && (!Number.isSafeInteger(options.peerTerm) || options.peerTerm < 0)) {
    throw new RangeError(`peer term must be a non-negative integer, got ${options.peerTerm}`);
  }
  const version = readVersionFile(config.dbDir);
  const groupDir = raftGroupDir(config, version.clusterId);
  const metaFile = join(groupDir, 'current', META_FILE_NAME);
  if (!existsSync(groupDir)) throw new Error(`no Raft group at ${groupDir} for clusterID ${version.clusterId}: nothing to repair`);
  const applied = await appliedInScmDb(config.dbDir);
  const warnings: string[] = [];
  const storage = RaftStorage.open(groupDir, {
    openWithBadRaftMeta: true,
    segmentSizeBytes: config.raft.segmentSizeBytes,
    corruptionPolicy: config.raft.logCorruptionPolicy,
    onWarning: (message) => warnings.push(message),
  });
  try {
    let problem: RaftMetaError | undefined = storage.metaProblem();
    if (problem === undefined && !storage.hasMetaFile() && applied.index > 0) problem = missingBesideScmDb(metaFile, applied);
    if (problem === undefined) {
      if (!storage.hasMetaFile()) return { outcome: 'fresh', metaFile };
      const meta = storage.readMeta();
      return { outcome: 'intact', metaFile, term: meta.term, votedFor: meta.votedFor };
    }
    const lastIndex = storage.lastIndex();
    const evidence: TermEvidence = {
      log: storage.term(lastIndex) ?? 0,
      logLastIndex: lastIndex,
      conf: storage.readConf()?.term ?? 0,
      scmDb: applied.term,
      peers: options.peerTerm,
    };
    const term = Math.max(evidence.log, evidence.conf, evidence.scmDb, evidence.peers ?? 0) + 1;
    let keptAs: string | undefined;
    if (existsSync(metaFile)) {
      keptAs = `${metaFile}.damaged-${stamp(options.now ?? new Date())}`;
      copyFileSync(metaFile, keptAs);
    }
    await storage.saveMeta(term, '');
    return { outcome: 'repaired', metaFile, problem: problem.detail, keptAs, evidence, term, warnings };
  } finally {
    await storage.close();
  }
}

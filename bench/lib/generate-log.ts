// Builds a large cluster state fast, for the restart benchmark: N AllocateContainer entries
// appended to the first node's Raft log and applied to its scm.db with the project's own classes
// (RaftStorage writes the Ratis segments; ScmStateMachine applies the entries exactly as a running
// node does, one atomic LevelDB batch per 1,000 entries and a snapshot point after each, as the
// default ozone.scm.ha.ratis.snapshot.threshold of 1,000 makes the driver do). The other nodes then
// get byte copies of that log's segments and of that scm.db: replication would have given them the
// same entries, and applying them the same state (the state machine is deterministic; a snapshot
// install ships scm.db the same way). Each node keeps its own raft-meta and raft-meta.conf. The
// nodes must be stopped, bootstrapped, in agreement (same last log entry, everything applied) and
// hold an OPEN RATIS/THREE pipeline.
//
// The entries: the last entry's term, the next indexes, one client id with increasing call ids (so
// the replicated retry cache sees what it would: 100,000 entries at most, expiring after the retry
// cache timeout) and the generator's clock as the leader's timestamp.
import { cp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeCommand, ScmStateMachine, type AllocateContainerCommand } from '../../src/statemachine/index.js';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import type { LogEntry } from '../../src/log-entry.js';

export interface NodeDirs {
  readonly name: string;
  /** <ozone.scm.ratis.storage.dir>/<group uuid> */
  readonly groupDir: string;
  /** <ozone.scm.db.dirs>/scm.db */
  readonly scmDbDir: string;
  readonly segmentSizeBytes: number;
  readonly preallocateBytes: number;
  readonly retryCacheTimeoutMs: number;
}

export interface GenerateResult {
  readonly entries: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly term: number;
  readonly pipelineId: string;
  readonly seconds: number;
  /** Bytes of one encoded AllocateContainer command (the entry's logData). */
  readonly commandBytes: number;
}

const APPLY_BATCH = 1_000;
const APPEND_BATCH = 10_000;

export async function generateAllocations(nodes: readonly NodeDirs[], count: number, onProgress?: (done: number) => void): Promise<GenerateResult> {
  const started = performance.now();
  const source = nodes[0];
  if (source === undefined) throw new Error('no node to generate entries for');
  const first = await checkAgreement(nodes);
  const storage = RaftStorage.open(source.groupDir, { segmentSizeBytes: source.segmentSizeBytes, preallocateBytes: source.preallocateBytes });
  let sm: ScmStateMachine | undefined;
  let commandBytes = 0;
  let pipelineId: string | undefined;
  try {
    sm = await ScmStateMachine.open(source.scmDbDir, { retryCacheTimeoutMs: source.retryCacheTimeoutMs });
    const pipeline = sm.listPipelines().find((p) => p.state === 'OPEN' && p.type === 'RATIS' && p.factor === 'THREE');
    if (pipeline === undefined) throw new Error('no OPEN RATIS/THREE pipeline to allocate containers on');
    pipelineId = pipeline.id;
    const clientId = `client-bench-generator-${Date.now().toString(36)}`;
    const end = first.index + count;
    for (let next = first.index + 1; next <= end; ) {
      const upto = Math.min(end, next + APPEND_BATCH - 1);
      const entries: LogEntry[] = [];
      const timestamp = Date.now();
      for (let index = next; index <= upto; index++) {
        const cmd: AllocateContainerCommand = {
          type: 'allocateContainer',
          clientId,
          callId: index - first.index,
          timestamp,
          replicationType: 'RATIS',
          replicationFactor: 'THREE',
          owner: 'bench',
          pipelineId,
        };
        const data = encodeCommand(cmd);
        commandBytes = data.length;
        entries.push({ term: first.term, index, payload: { kind: 'data', data } });
      }
      const appended = storage.append(entries);
      for (let k = 0; k < entries.length; k += APPLY_BATCH) {
        await sm.applyBatch(entries.slice(k, k + APPLY_BATCH));
        await sm.recordSnapshotPoint();
      }
      await appended;
      next = upto + 1;
      onProgress?.(next - first.index - 1);
    }
  } finally {
    await sm?.close();
    await storage.close();
  }
  for (const target of nodes.slice(1)) await copyNodeState(source, target);
  return { entries: count, firstIndex: first.index + 1, lastIndex: first.index + count, term: first.term, pipelineId: pipelineId ?? '', seconds: (performance.now() - started) / 1000, commandBytes };
}

/** Every node's log ends at the same entry and every node has applied all of it. */
async function checkAgreement(nodes: readonly NodeDirs[]): Promise<{ index: number; term: number }> {
  let first: { name: string; index: number; term: number } | undefined;
  for (const n of nodes) {
    const storage = RaftStorage.open(n.groupDir);
    try {
      const index = storage.lastIndex();
      const term = storage.term(index);
      if (term === undefined) throw new Error(`${n.name}'s log is empty`);
      first ??= { name: n.name, index, term };
      if (index !== first.index || term !== first.term) {
        throw new Error(`${n.name}'s log ends at ${term}#${index}, ${first.name}'s at ${first.term}#${first.index}: the nodes must agree before entries are generated`);
      }
      const sm = await ScmStateMachine.open(n.scmDbDir, { retryCacheTimeoutMs: n.retryCacheTimeoutMs });
      const applied = sm.lastApplied();
      await sm.close();
      if (applied.index !== index) throw new Error(`${n.name} has applied ${applied.index} of ${index} log entries: stop the nodes only once they are idle`);
    } finally {
      await storage.close();
    }
  }
  if (first === undefined) throw new Error('no node');
  return first;
}

const SEGMENT_FILE = /^log_(inprogress_)?\d+(-\d+)?$/;

/** Replaces target's log segments and scm.db by copies of source's (raft-meta stays the target's). */
async function copyNodeState(source: NodeDirs, target: NodeDirs): Promise<void> {
  const sourceCurrent = join(source.groupDir, 'current');
  const targetCurrent = join(target.groupDir, 'current');
  for (const name of await readdir(targetCurrent)) if (SEGMENT_FILE.test(name)) await rm(join(targetCurrent, name));
  for (const name of await readdir(sourceCurrent)) if (SEGMENT_FILE.test(name)) await cp(join(sourceCurrent, name), join(targetCurrent, name));
  await rm(target.scmDbDir, { recursive: true, force: true });
  await cp(source.scmDbDir, target.scmDbDir, { recursive: true });
}

export function nodeDirs(name: string, groupDir: string, dbDir: string, raft: { segmentSizeBytes: number; segmentPreallocatedSizeBytes: number; retryCacheTimeoutMs: number }): NodeDirs {
  return {
    name,
    groupDir,
    scmDbDir: join(dbDir, 'scm.db'),
    segmentSizeBytes: raft.segmentSizeBytes,
    preallocateBytes: raft.segmentPreallocatedSizeBytes,
    retryCacheTimeoutMs: raft.retryCacheTimeoutMs,
  };
}

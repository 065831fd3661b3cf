// The consistency check (as etcd's corruption check): the leader writes a marker into the log now
// and then; every replica hashes its scm.db right after applying it (src/statemachine); each node
// then asks the other members for their hash at that index and judges itself against the
// majority. A replica that diverged silently (a forged append, a disk that lied, a bug in apply)
// shows up here as MISMATCH, in scm_consistency_mismatch, in an error log line naming the nodes and
// the index, and in /status.
import type { ConsistencyHash, ConsistencyNodeResult, ConsistencyReport } from '../api/scm-api.js';

export interface ConsistencyMember {
  readonly nodeId: string;
  /** The member's client port, where it answers GetConsistencyHash. */
  readonly clientAddress: string;
}

export interface ConsistencyCheckDeps {
  readonly nodeId: string;
  /** The index this replica has applied up to. */
  appliedIndex(): number;
  /** This replica's last log index: a marker far beyond it is not waited for. */
  lastLogIndex(): number;
  /** This replica's hash right after the marker at `index`, if it applied it and remembers it. */
  hashAt(index: number): Promise<string> | undefined;
  /** Every member of the current configuration (voters and non-voters), this node included. */
  members(): readonly ConsistencyMember[];
  /** Member `nodeId`'s answer to GetConsistencyHash at `address`; rejects when it cannot be reached. */
  peerHash(nodeId: string, address: string, index: number): Promise<ConsistencyHash>;
  /** Wall-clock milliseconds, for when a check finished. */
  now(): number;
  /** Resolves after `ms` (injected so tests need not wait). */
  sleep(ms: number): Promise<void>;
  /** Called with every finished check, as this node judges itself. */
  onChecked(check: ConsistencyCheckResult): void;
  /** How long a node waits to apply a marker before it answers "not applied yet". */
  readonly applyWaitMs: number;
}

export type OwnConsistency = ConsistencyNodeResult['state'];

export interface ConsistencyCheckResult {
  readonly report: ConsistencyReport;
  /** This node's own state in the report. */
  readonly own: OwnConsistency;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;
/**
 * How far beyond its last log entry a replica still waits for a marker: a follower outside the
 * majority that acknowledged it may be that far behind. A caller naming an index further out is
 * answered at once (it must not hold a client call slot for applyWaitMs).
 */
const MARKER_LAG_ALLOWANCE = 4096;
/** Checks remembered, so the leader's CheckConsistency and the node's own check share one run. */
const REMEMBERED_CHECKS = 16;

/**
 * Judges every member against the hash a strict majority of the members hold. Without such a
 * majority, members whose known hashes differ are all MISMATCH (there is no telling which is
 * right, but they differ), and members whose hash no other contradicts are UNKNOWN.
 */
export function judge(index: number, hashes: ReadonlyMap<string, ConsistencyNodeResult>): ConsistencyReport {
  const counts = new Map<string, number>();
  for (const r of hashes.values()) if (r.state === 'MATCH') counts.set(r.hash, (counts.get(r.hash) ?? 0) + 1);
  let majority: string | undefined;
  for (const [hash, count] of counts) if (count * 2 > hashes.size) majority = hash;
  const known = [...counts.values()].reduce((a, b) => a + b, 0);
  const nodes = [...hashes.values()].map((r): ConsistencyNodeResult => {
    if (r.state !== 'MATCH') return r;
    if (majority !== undefined) return r.hash === majority ? r : { ...r, state: 'MISMATCH', detail: `the majority holds ${majority}` };
    if (counts.size > 1) return { ...r, state: 'MISMATCH', detail: 'the known hashes differ and no majority holds any one of them' };
    // Agreeing with a minority proves nothing: a diverged node whose peers cannot answer is not MATCH.
    return { ...r, state: 'UNKNOWN', detail: `only ${known} of ${hashes.size} members' hashes are known; a majority must hold one to judge` };
  });
  return { index, consistent: nodes.every((n) => n.state !== 'MISMATCH'), nodes };
}

export class ConsistencyChecker {
  private readonly checks = new Map<number, Promise<ConsistencyReport>>();
  private last: (ConsistencyCheckResult & { readonly at: number }) | undefined;

  constructor(private readonly deps: ConsistencyCheckDeps) {}

  /**
   * This replica's hash right after the marker at `index`, waiting up to applyWaitMs for it to be
   * applied here (not for an index far beyond this replica's log: see MARKER_LAG_ALLOWANCE).
   * `known` is false, with the reason, when this replica cannot tell.
   */
  async ownHash(index: number): Promise<ConsistencyHash> {
    const last = this.deps.lastLogIndex();
    if (index > last + MARKER_LAG_ALLOWANCE) {
      return { index, known: false, hash: '', detail: `index ${index} is far beyond this node's log (last index ${last})` };
    }
    for (let waited = 0; this.deps.appliedIndex() < index && waited < this.deps.applyWaitMs; waited += 20) await this.deps.sleep(20);
    const applied = this.deps.appliedIndex();
    if (applied < index) return { index, known: false, hash: '', detail: `applied only up to index ${applied} after ${this.deps.applyWaitMs} ms` };
    const hash = this.deps.hashAt(index);
    if (hash === undefined) {
      return { index, known: false, hash: '', detail: `no hash at index ${index}: not a marker this node applied (it may have installed a checkpoint past it, or restarted since)` };
    }
    try {
      return { index, known: true, hash: await hash, detail: '' };
    } catch (err) {
      return { index, known: false, hash: '', detail: `hashing scm.db failed: ${(err as Error).message}` };
    }
  }

  /** Every member's hash at the marker at `index`, judged; one run per index however often asked. */
  check(index: number): Promise<ConsistencyReport> {
    let run = this.checks.get(index);
    if (run === undefined) {
      run = this.run(index);
      this.checks.set(index, run);
      while (this.checks.size > REMEMBERED_CHECKS) this.checks.delete(this.checks.keys().next().value as number);
    }
    return run;
  }

  /** The latest finished check, as this node judged itself. */
  latest(): (ConsistencyCheckResult & { readonly at: number }) | undefined {
    return this.last;
  }

  private async run(index: number): Promise<ConsistencyReport> {
    const members = this.deps.members();
    const answers = await Promise.all(
      members.map(async (m): Promise<ConsistencyNodeResult> => {
        if (m.nodeId === this.deps.nodeId) return asResult(m.nodeId, await this.ownHash(index));
        if (m.clientAddress === '') return { nodeId: m.nodeId, state: 'UNREACHABLE', hash: '', detail: 'its client address is not configured here' };
        try {
          return asResult(m.nodeId, checkedAnswer(await this.deps.peerHash(m.nodeId, m.clientAddress, index), index));
        } catch (err) {
          return { nodeId: m.nodeId, state: 'UNREACHABLE', hash: '', detail: (err as Error).message };
        }
      }),
    );
    const report = judge(index, new Map(answers.map((a) => [a.nodeId, a])));
    const own = report.nodes.find((n) => n.nodeId === this.deps.nodeId)?.state ?? 'UNKNOWN';
    this.last = { report, own, at: this.deps.now() };
    this.deps.onChecked({ report, own });
    return report;
  }
}

/** A peer's answer, believed only if it is about the index asked and carries a well-formed hash. */
function checkedAnswer(answer: ConsistencyHash, index: number): ConsistencyHash {
  if (answer.index !== index) return { index, known: false, hash: '', detail: `answered about index ${answer.index}, not ${index}` };
  if (answer.known && !HEX_SHA256.test(answer.hash)) return { index, known: false, hash: '', detail: 'answered a malformed hash' };
  return answer;
}

function asResult(nodeId: string, h: ConsistencyHash): ConsistencyNodeResult {
  return h.known ? { nodeId, state: 'MATCH', hash: h.hash, detail: '' } : { nodeId, state: 'UNKNOWN', hash: '', detail: h.detail };
}

// Whether this node is a member of its Raft group, was removed from it, or has never been a member
// (a node after `scm bootstrap`, which asks the leader to add it). Decided from the configurations
// the node holds itself, never from what a peer says.
//
// Removed means: a committed configuration without this node followed a committed one with it.
// Only committed configurations count: an uncommitted entry may still be cut from the log (a
// joining node could be added by an entry a new leader drops, a removal could be dropped the same
// way). The evidence, in the order it disappears:
// - scm.db's applied configuration still holds the node while the committed one (raft-meta.conf,
//   the log) no longer does: the removal committed but is not applied yet;
// - raft-meta.conf as start-up read it still holds the node while scm.db's (newer) configuration
//   does not: a snapshot install without the node swapped scm.db in and stopped before recording;
// - scm.db's removal record (self-removal.ts), written in the batch that applied the removal, or
//   by the install, or here at start-up from the two above before anything rewrites them.
// A node that never held a committed configuration with itself has none of these, so a
// bootstrapped node that restarts in the middle of joining (after entries, or a checkpoint taken
// before it was added) still asks to be added, and so does one whose log holds the entry adding it
// before it knows that entry committed: it is a member once it does.
import type { IndexedMembership, Membership } from '../raft/index.js';
import { isMember } from '../raft/index.js';
import type { AppliedConfiguration, RemovalRecord } from '../statemachine/index.js';

/** What the node makes of its own place in the group. */
export type SelfMembership =
  /**
   * In its committed configuration, or in its latest one after a committed configuration held it
   * (a removal not committed yet, a re-add in the log): nothing to ask for, nothing to refuse.
   */
  | { readonly kind: 'member' }
  /**
   * Never in a committed configuration it holds: a bootstrapped node that asks to be added, until
   * it knows a committed configuration with itself (an add in its log not known committed may be cut).
   */
  | { readonly kind: 'joining' }
  /**
   * Removed by the configuration entry at `index`: it must not ask to be added again. `recorded`
   * says whether scm.db's removal record holds it yet.
   */
  | { readonly kind: 'removed'; readonly index: number; readonly term: number; readonly recorded: boolean };

/** Everything the node holds that says where it stands. */
export interface SelfMembershipEvidence {
  readonly selfId: string;
  /** The core's latest configuration (it takes effect once in the log, committed or not). */
  readonly current: Membership;
  /** The core's committed configuration. */
  readonly committed: IndexedMembership;
  /** The configuration scm.db applied last (committed, at or below `committed`). */
  readonly applied: AppliedConfiguration | undefined;
  /** scm.db's record of this node's removal. */
  readonly removal: RemovalRecord | undefined;
  /** raft-meta.conf as start-up read it (a committed configuration). */
  readonly savedConf: AppliedConfiguration | undefined;
  /** The term of the log entry at an index, where the log still holds it. */
  readonly termAt: (index: number) => number | undefined;
}

export function judgeSelfMembership(e: SelfMembershipEvidence): SelfMembership {
  // In its committed configuration (a removal that is not committed yet is not one).
  if (isMember(e.committed.membership, e.selfId)) return { kind: 'member' };
  const inLatest = isMember(e.current, e.selfId);
  // Removed before: it never asks by itself. A re-add in its log is an administrator's AddScm, which
  // fails if its entry is cut before committing (the administrator asks again); without one it stays out.
  if (e.removal !== undefined) return inLatest ? { kind: 'member' } : { kind: 'removed', index: e.removal.index, term: e.removal.term, recorded: true };
  const held = [e.applied, e.savedConf].filter((c): c is AppliedConfiguration => c !== undefined);
  const earlierWithSelf = held.some((c) => c.index < e.committed.index && holds(c, e.selfId));
  // Never a member: it asks, even with the entry adding it in its log, until that entry commits. A
  // leader that dies before committing it may leave a successor without it, which then never
  // contacts this node to cut it; asked again, that leader adds it anew (a leader that holds the
  // add already answers that it is a member, and commits it).
  if (!earlierWithSelf) return { kind: 'joining' };
  if (inLatest) return { kind: 'member' };
  const term = held.find((c) => c.index === e.committed.index)?.term ?? e.termAt(e.committed.index) ?? 0;
  return { kind: 'removed', index: e.committed.index, term, recorded: false };
}

function holds(c: AppliedConfiguration, id: string): boolean {
  return c.voters.some((p) => p.id === id) || c.nonVoters.some((p) => p.id === id);
}

/** Where a running node (or a test that boots one from disk) finds the evidence. */
export interface SelfMembershipSources {
  readonly selfId: string;
  readonly core: { status(): { readonly membership: Membership }; committedMembership(): IndexedMembership; logTerm(index: number): number | undefined };
  readonly sm: { configuration(): AppliedConfiguration | undefined; removal(): RemovalRecord | undefined; recordRemoval(removal: RemovalRecord): Promise<void> };
  readonly savedConf: AppliedConfiguration | undefined;
}

export function selfMembershipOf(sources: SelfMembershipSources): SelfMembership {
  return judgeSelfMembership({
    selfId: sources.selfId,
    current: sources.core.status().membership,
    committed: sources.core.committedMembership(),
    applied: sources.sm.configuration(),
    removal: sources.sm.removal(),
    savedConf: sources.savedConf,
    termAt: (index) => sources.core.logTerm(index),
  });
}

/**
 * At start-up, before the Raft loop runs: the node's place in its group. A removal found only in
 * configurations the loop is about to replace (raft-meta.conf follows the committed configuration,
 * scm.db applies it) is recorded in scm.db first, so the next start still knows.
 */
export async function selfMembershipAtStart(sources: SelfMembershipSources): Promise<SelfMembership> {
  const judged = selfMembershipOf(sources);
  if (judged.kind !== 'removed' || judged.recorded) return judged;
  await sources.sm.recordRemoval({ nodeId: sources.selfId, term: judged.term, index: judged.index });
  return { ...judged, recorded: true };
}

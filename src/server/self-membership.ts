// Whether this node is a member of its Raft group, and so whether `scm start` should ask the
// leader to add it (what a node does after `scm bootstrap`). Decided from the configurations the
// node holds itself, never from what a peer says.
import type { IndexedMembership, Membership } from '../raft/index.js';
import { isMember } from '../raft/index.js';
import type { AppliedConfiguration, RemovalRecord } from '../statemachine/index.js';

/** What the node makes of its own place in the group. */
export type SelfMembership =
  /** In its latest configuration: nothing to ask for. */
  | { readonly kind: 'member' }
  /** Not in its configuration: a bootstrapped node that asks the leader to add it. */
  | { readonly kind: 'joining' };

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
}

export function judgeSelfMembership(evidence: SelfMembershipEvidence): SelfMembership {
  return isMember(evidence.current, evidence.selfId) ? { kind: 'member' } : { kind: 'joining' };
}

/** Where a running node (or a test that boots one from disk) finds the evidence. */
export interface SelfMembershipSources {
  readonly selfId: string;
  readonly core: { status(): { readonly membership: Membership }; committedMembership(): IndexedMembership };
  readonly sm: { configuration(): AppliedConfiguration | undefined; removal(): RemovalRecord | undefined; recordRemoval(removal: RemovalRecord): Promise<void> };
  readonly savedConf: AppliedConfiguration | undefined;
}

/** At start-up, before the Raft loop runs: the node's place in its group. */
export function selfMembershipAtStart(sources: SelfMembershipSources): Promise<SelfMembership> {
  return Promise.resolve(selfMembershipOf(sources));
}

export function selfMembershipOf(sources: SelfMembershipSources): SelfMembership {
  return judgeSelfMembership({
    selfId: sources.selfId,
    current: sources.core.status().membership,
    committed: sources.core.committedMembership(),
    applied: sources.sm.configuration(),
    removal: sources.sm.removal(),
    savedConf: sources.savedConf,
  });
}

// Group configuration bookkeeping. A configuration takes effect as soon as its entry is in the log
// (Raft thesis §4.1, one server at a time), so the tracker keeps the latest committed configuration
// plus the uncommitted ones above it; a log truncation reverts to the one before.
import type { EntryPayload, IndexedMembership, Membership, RaftPeer } from './types.js';
import { invariant } from './assert.js';

export function membershipFromPayload(payload: EntryPayload & { kind: 'config' }): Membership {
  return { voters: payload.peers, nonVoters: payload.listeners };
}

export function payloadFromMembership(m: Membership): EntryPayload {
  return { kind: 'config', peers: m.voters, listeners: m.nonVoters };
}

export function isVoter(m: Membership, id: string): boolean {
  return m.voters.some((p) => p.id === id);
}

export function isMember(m: Membership, id: string): boolean {
  return isVoter(m, id) || m.nonVoters.some((p) => p.id === id);
}

export function memberIds(m: Membership): string[] {
  return [...m.voters.map((p) => p.id), ...m.nonVoters.map((p) => p.id)];
}

/** Checks that a membership is well formed: ids non-empty and unique across voters and non-voters. */
export function validateMembership(m: Membership, what: string): void {
  const seen = new Set<string>();
  for (const p of [...m.voters, ...m.nonVoters]) {
    if (typeof p.id !== 'string' || p.id.length === 0) throw new Error(`${what}: a peer has an empty id`);
    if (seen.has(p.id)) throw new Error(`${what}: peer ${JSON.stringify(p.id)} appears more than once`);
    if (!Number.isInteger(p.priority) || p.priority < 0) {
      throw new Error(`${what}: peer ${JSON.stringify(p.id)} has invalid priority ${p.priority}`);
    }
    seen.add(p.id);
  }
}

export function sameMembership(a: Membership, b: Membership): boolean {
  const key = (m: Membership): string =>
    JSON.stringify([
      m.voters.map(peerKey).sort(),
      m.nonVoters.map(peerKey).sort(),
    ]);
  return key(a) === key(b);
}

function peerKey(p: RaftPeer): string {
  return `${p.id}\u0000${p.address}\u0000${p.priority}`;
}

export class MembershipTracker {
  private base: IndexedMembership;
  private readonly pending: IndexedMembership[] = [];

  constructor(initial: IndexedMembership) {
    this.base = initial;
  }

  current(): Membership {
    return (this.pending[this.pending.length - 1] ?? this.base).membership;
  }

  currentIndex(): number {
    return (this.pending[this.pending.length - 1] ?? this.base).index;
  }

  committed(): IndexedMembership {
    return this.base;
  }

  hasUncommitted(): boolean {
    return this.pending.length > 0;
  }

  /** Every server of the committed configuration and of the uncommitted ones after it (each once). */
  serversSinceCommitted(): RaftPeer[] {
    const seen = new Map<string, RaftPeer>();
    for (const { membership } of [this.base, ...this.pending]) {
      for (const p of [...membership.voters, ...membership.nonVoters]) seen.set(p.id, p);
    }
    return [...seen.values()];
  }

  /** A configuration entry was appended at `index`. */
  appended(index: number, membership: Membership): void {
    const last = this.pending[this.pending.length - 1] ?? this.base;
    invariant(index > last.index, `configuration at ${index} appended below the previous one at ${last.index}`);
    this.pending.push({ index, membership });
  }

  /** The log was truncated from `index` on: configurations there no longer exist. */
  truncatedFrom(index: number): void {
    invariant(index > this.base.index, `truncation at ${index} removes the committed configuration at ${this.base.index}`);
    while (this.pending.length > 0 && (this.pending[this.pending.length - 1] as IndexedMembership).index >= index) {
      this.pending.pop();
    }
  }

  /** The commit index advanced: configurations at or below it are committed. */
  committedTo(commit: number): void {
    while (this.pending.length > 0 && (this.pending[0] as IndexedMembership).index <= commit) {
      this.base = this.pending.shift() as IndexedMembership;
    }
  }

  /**
   * A snapshot replaced the log up to its index: `base` is the configuration the snapshot itself
   * holds (the one in force at its index), never one a message claimed. Configurations in log
   * entries kept after the snapshot are added again by the caller through appended().
   */
  restore(base: IndexedMembership): void {
    this.pending.length = 0;
    this.base = base;
  }
}

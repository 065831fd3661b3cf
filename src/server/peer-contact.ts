// When this node last heard from each peer over the Raft port, and heartbeat round trips. A leader
// hears from every follower (their answers); a follower only from its leader. "Unreachable" means
// nothing heard for longer than an election timeout: the same rule the leader's check-quorum uses,
// so /status, GetScmRoles, the metrics and the log agree with what Raft itself sees.
import type { Message } from '../raft/index.js';

/** Heartbeats remembered per peer while waiting for their answers. */
const MAX_OUTSTANDING = 64;

export class PeerContact {
  private readonly lastHeard = new Map<string, number>();
  private readonly heartbeatsSent = new Map<string, Map<number, number>>();
  private readonly unreachable = new Set<string>();

  constructor(
    /** Milliseconds clock. */
    private readonly now: () => number,
    private readonly electionTimeoutMs: number,
    private readonly onRoundTrip: (peer: string, seconds: number) => void,
  ) {}

  /** A message this node sends (heartbeats are timed until answered). */
  sent(m: Message): void {
    if (m.type !== 'heartbeat') return;
    let outstanding = this.heartbeatsSent.get(m.to);
    if (outstanding === undefined) {
      outstanding = new Map();
      this.heartbeatsSent.set(m.to, outstanding);
    }
    if (!outstanding.has(m.sentTick)) outstanding.set(m.sentTick, this.now());
    if (outstanding.size > MAX_OUTSTANDING) outstanding.delete(outstanding.keys().next().value as number);
  }

  /** A message from a peer, already accepted by the Raft loop. */
  received(m: Message): void {
    const now = this.now();
    this.lastHeard.set(m.from, now);
    if (m.type !== 'heartbeat-response') return;
    const outstanding = this.heartbeatsSent.get(m.from);
    const sentAt = outstanding?.get(m.sentTick);
    if (outstanding === undefined || sentAt === undefined) return;
    outstanding.delete(m.sentTick);
    // Older heartbeats still waiting were lost or overtaken: forget them.
    for (const tick of outstanding.keys()) if (tick < m.sentTick) outstanding.delete(tick);
    this.onRoundTrip(m.from, Math.max(0, now - sentAt) / 1000);
  }

  /** Seconds since anything was heard from `peer`; undefined if never. */
  silentSeconds(peer: string): number | undefined {
    const at = this.lastHeard.get(peer);
    return at === undefined ? undefined : Math.max(0, this.now() - at) / 1000;
  }

  /** Nothing heard from `peer` for longer than an election timeout (or ever, since `since`). */
  isUnreachable(peer: string, since: number): boolean {
    const at = this.lastHeard.get(peer) ?? since;
    return this.now() - at > this.electionTimeoutMs;
  }

  /**
   * Re-evaluates the peers this node should hear from; returns the ones whose reachability changed
   * since the last call (each change is reported once, not every time it is checked).
   */
  changes(expected: readonly string[], since: number): Array<{ peer: string; reachable: boolean; silentSeconds: number }> {
    const out: Array<{ peer: string; reachable: boolean; silentSeconds: number }> = [];
    for (const peer of expected) {
      const down = this.isUnreachable(peer, since);
      if (down === this.unreachable.has(peer)) continue;
      if (down) this.unreachable.add(peer);
      else this.unreachable.delete(peer);
      out.push({ peer, reachable: !down, silentSeconds: this.silentSeconds(peer) ?? (this.now() - since) / 1000 });
    }
    // Peers no longer expected (a role change, a removed member) start afresh.
    for (const peer of [...this.unreachable]) if (!expected.includes(peer)) this.unreachable.delete(peer);
    return out;
  }
}

// What comes in on the Raft port, checked before the Raft loop sees it: it must decode (terms and
// indexes in range), be addressed to this node, name as its sender the peer the connection says it
// comes from, come from a member of this node's configuration, and keep the protocol's own rules.
// Anything else is dropped and counted (scm_raft_messages_dropped_total{reason}), every one, and
// logged once per peer and reason, not once per message: a flood must not become a flood of log
// lines. In plaintext a peer is whatever its HELLO claims, so new peers cost nothing to make: the
// pairs remembered are bounded (forgotten all at once when DROP_WARNED_MAX are held, as
// peer-transport.ts forgets its warnings), and so are the lines (DROP_REPORTS_PER_INTERVAL per
// reason per DROP_REPORT_INTERVAL_MS, the next line saying how many drops of that reason went unlogged
// meanwhile).
// Before, every pair was kept for good and logged: 120,000 streams naming new 256-byte senders made
// 137 MB of log in about 30 s and kept 136 MB of RSS.
//
// With TLS the connection's id is the node its certificate names (authz.ts checks that when the
// stream opens), so a message naming another sender is no mistake to shrug off but a member lying
// about who it is: the stream is then ended with PERMISSION_DENIED (`authenticatedSenders`).
import type { Message, RaftNode } from '../raft/index.js';
import { memberIds } from '../raft/index.js';
import type { RaftDropReason } from '../metrics/node-metrics.js';
import { decodeRaftMessage } from './raft-codec.js';

/** (peer, reason) pairs remembered as logged; all are forgotten once this many are held. */
export const DROP_WARNED_MAX = 64;
/** The window over which drop warnings of one reason are limited. */
export const DROP_REPORT_INTERVAL_MS = 60_000;
/**
 * Warnings of one reason per window: a group has at most five members and one joining, so each can
 * still be named the first time it sends something dropped; a flood adds at most this many lines a
 * minute per reason.
 */
export const DROP_REPORTS_PER_INTERVAL = 8;

export interface RaftInboundParts {
  readonly selfId: string;
  readonly core: () => RaftNode;
  /** The SCMs of the service in the configuration file (ozone.scm.nodes.<service>). */
  readonly configuredPeers: readonly string[];
  /** Hands an accepted message to the Raft loop; returns why the core refused it, if it did. */
  readonly step: (message: Message) => Error | undefined;
  readonly accepted: (message: Message) => void;
  readonly dropped: (reason: RaftDropReason) => void;
  readonly warn: (fields: Record<string, unknown>, message: string) => void;
  /**
   * Set when streams are authenticated (TLS): called for a message naming another sender than its
   * stream's certificate, which then ends the stream with PERMISSION_DENIED and the text returned.
   */
  readonly authenticatedSenders?: (peer: string, detail: string) => string;
  /** A monotonic clock in milliseconds, for the log rate limit (performance.now when absent: a wall clock set back would hold the warnings back as long). */
  readonly now?: () => number;
}

/** Why a stream is ended: bytes that are not our protocol, or a sender lying about itself. */
export interface InboundRefusal {
  readonly code: 'INVALID_ARGUMENT' | 'PERMISSION_DENIED';
  readonly message: string;
}

export class RaftInbound {
  /** (peer, reason) pairs logged; at most DROP_WARNED_MAX. */
  private readonly warned = new Set<string>();
  /** Per reason: the current window's start, the lines logged in it, and new pairs not logged since the last line. */
  private readonly reports = new Map<RaftDropReason, { windowStart: number; lines: number; unlogged: number }>();

  constructor(private readonly parts: RaftInboundParts) {}

  /**
   * One batch from a connection whose metadata names `from`. Returns a refusal when the batch
   * holds bytes that do not decode (INVALID_ARGUMENT: its sender is not speaking our protocol), or,
   * on an authenticated stream, a message naming another sender (PERMISSION_DENIED); the
   * connection is then ended.
   */
  receive(from: string, batch: readonly Uint8Array[]): InboundRefusal | undefined {
    for (const bytes of batch) {
      let message: Message;
      try {
        message = decodeRaftMessage(bytes);
      } catch (err) {
        this.drop(from, 'malformed', (err as Error).message);
        return { code: 'INVALID_ARGUMENT', message: `malformed Raft message from ${from}: ${(err as Error).message}` };
      }
      if (message.to !== this.parts.selfId) {
        this.drop(from, 'misaddressed', `${message.type} addressed to ${message.to}`);
        continue;
      }
      if (message.from !== from) {
        const detail = `a ${message.type} naming ${message.from} as its sender on ${from}'s connection`;
        this.drop(from, 'sender_mismatch', detail);
        if (this.parts.authenticatedSenders !== undefined) return { code: 'PERMISSION_DENIED', message: this.parts.authenticatedSenders(from, detail) };
        continue;
      }
      if (!this.acceptsFrom(message.from)) {
        this.drop(from, 'non_member', `${message.type} of term ${message.term}: ${message.from} is not in this node's configuration`);
        continue;
      }
      const refused = this.parts.step(message);
      if (refused !== undefined) {
        this.drop(from, 'invalid', refused.message);
        continue;
      }
      this.parts.accepted(message);
    }
    return undefined;
  }

  /**
   * Members of the latest and the committed configuration (a member being added or removed is in
   * one of them), and the SCMs the configuration file names. The file's list matters: a follower
   * that missed a configuration change must still take appends from a leader its log does not know
   * yet (Raft thesis 4.1), and a node that ran `scm bootstrap` knows no group until the leader's
   * first append reaches it. A stranger named nowhere cannot move anyone's term. On a leader, also
   * the members it removed and is still telling so: their answers say when they know.
   */
  acceptsFrom(id: string): boolean {
    return this.parts.configuredPeers.includes(id) || this.parts.core().isTellingOfRemoval(id) || this.isMember(id);
  }

  /** A member of the latest or the committed configuration. */
  isMember(id: string): boolean {
    const core = this.parts.core();
    return memberIds(core.status().membership).includes(id) || memberIds(core.committedMembership().membership).includes(id);
  }

  /** The number of (peer, reason) pairs remembered as logged (bounded by DROP_WARNED_MAX). */
  get warnedPairs(): number {
    return this.warned.size;
  }

  private drop(peer: string, reason: RaftDropReason, detail: string): void {
    this.parts.dropped(reason);
    const key = `${peer}\u0000${reason}`;
    if (this.warned.has(key)) return;
    const now = this.parts.now?.() ?? performance.now();
    let report = this.reports.get(reason);
    if (report === undefined || now - report.windowStart >= DROP_REPORT_INTERVAL_MS) {
      report = { windowStart: now, lines: 0, unlogged: report?.unlogged ?? 0 };
      this.reports.set(reason, report);
    }
    if (report.lines >= DROP_REPORTS_PER_INTERVAL) {
      // Not remembered: once the window turns, this pair may still be named.
      report.unlogged++;
      return;
    }
    report.lines++;
    const unlogged = report.unlogged;
    report.unlogged = 0;
    if (this.warned.size >= DROP_WARNED_MAX) this.warned.clear();
    this.warned.add(key);
    const since =
      unlogged > 0
        ? `; ${unlogged} more ${reason} drop(s) from peers not logged before went unlogged since the last such line (at most ${DROP_REPORTS_PER_INTERVAL} lines a minute per reason)`
        : '';
    this.parts.warn(
      { event: 'raft_message_dropped', peer, reason, detail, ...(unlogged > 0 ? { unlogged } : {}) },
      `dropped a Raft message from ${peer} (${reason}): ${detail}; further ones like it are only counted${since}`,
    );
  }
}

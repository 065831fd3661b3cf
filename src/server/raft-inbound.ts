// What comes in on the Raft port, checked before the Raft loop sees it: it must decode (terms and
// indexes in range), be addressed to this node, name as its sender the peer the connection says it
// comes from, come from a member of this node's configuration, and keep the protocol's own rules.
// Anything else is dropped, counted (scm_raft_messages_dropped_total{reason}) and logged once per
// peer and reason, not once per message: a flood must not become a flood of log lines.
//
// With TLS the connection's id is the node its certificate names (authz.ts checks that when the
// stream opens), so a message naming another sender is no mistake to shrug off but a member lying
// about who it is: the stream is then ended with PERMISSION_DENIED (`authenticatedSenders`).
import type { Message, RaftNode } from '../raft/index.js';
import { memberIds } from '../raft/index.js';
import type { RaftDropReason } from '../metrics/node-metrics.js';
import { decodeRaftMessage } from './raft-codec.js';

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
}

/** Why a stream is ended: bytes that are not our protocol, or a sender lying about itself. */
export interface InboundRefusal {
  readonly code: 'INVALID_ARGUMENT' | 'PERMISSION_DENIED';
  readonly message: string;
}

export class RaftInbound {
  private readonly warned = new Set<string>();

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

  private drop(peer: string, reason: RaftDropReason, detail: string): void {
    this.parts.dropped(reason);
    const key = `${peer}\u0000${reason}`;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.parts.warn({ event: 'raft_message_dropped', peer, reason, detail }, `dropped a Raft message from ${peer} (${reason}): ${detail}; further ones like it are only counted`);
  }
}

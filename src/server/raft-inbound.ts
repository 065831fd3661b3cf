// What comes in on the Raft port, checked before the Raft loop sees it: it must decode (terms and
// indexes in range), be addressed to this node, name as its sender the peer the connection says it
// comes from, come from a member of this node's configuration, and keep the protocol's own rules.
// Anything else is dropped, counted (scm_raft_messages_dropped_total{reason}) and logged once per
// peer and reason, not once per message: a flood must not become a flood of log lines.
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
}

export class RaftInbound {
  private readonly warned = new Set<string>();

  constructor(private readonly parts: RaftInboundParts) {}

  /**
   * One batch from a connection whose metadata names `from`. Returns an error text when the batch
   * holds bytes that do not decode: the connection is then ended (INVALID_ARGUMENT), since its
   * sender is not speaking our protocol.
   */
  receive(from: string, batch: readonly Uint8Array[]): string | undefined {
    for (const bytes of batch) {
      let message: Message;
      try {
        message = decodeRaftMessage(bytes);
      } catch (err) {
        this.drop(from, 'malformed', (err as Error).message);
        return `malformed Raft message from ${from}: ${(err as Error).message}`;
      }
      if (message.to !== this.parts.selfId) {
        this.drop(from, 'misaddressed', `${message.type} addressed to ${message.to}`);
        continue;
      }
      if (message.from !== from) {
        this.drop(from, 'sender_mismatch', `a ${message.type} naming ${message.from} as its sender on ${from}'s connection`);
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
   * first append reaches it. A stranger named nowhere cannot move anyone's term.
   */
  private acceptsFrom(id: string): boolean {
    if (this.parts.configuredPeers.includes(id)) return true;
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

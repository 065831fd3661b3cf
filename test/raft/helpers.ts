// Helpers for driving a single RaftNode directly in table-driven tests.
import {
  MemoryLog,
  RaftNode,
  type LogEntry,
  type Message,
  type Ready,
} from '../../src/raft/index.js';
import { makeConfig, membership, type ConfigOverrides } from './cluster.js';

export interface SoloOptions {
  readonly voters?: string[];
  readonly nonVoters?: string[];
  /** Terms of the entries at indexes 1..n already in the durable log. */
  readonly logTerms?: number[];
  readonly term?: number;
  readonly votedFor?: string;
  readonly applied?: number;
  readonly commit?: number;
  readonly overrides?: ConfigOverrides;
}

export function dataEntry(index: number, term: number, text = `e${index}`): LogEntry {
  return { index, term, payload: { kind: 'data', data: new TextEncoder().encode(text) } };
}

export function solo(id: string, o: SoloOptions = {}): { raft: RaftNode; log: MemoryLog } {
  const log = new MemoryLog();
  log.append((o.logTerms ?? []).map((t, k) => dataEntry(k + 1, t)));
  const raft = new RaftNode(makeConfig(id, 7, o.overrides ?? {}), log, {
    hardState: { term: o.term ?? 0, votedFor: o.votedFor ?? '' },
    membership: membership(o.voters ?? ['a', 'b', 'c'], o.nonVoters ?? []),
    membershipIndex: 0,
    applied: o.applied ?? 0,
    ...(o.commit !== undefined ? { commit: o.commit } : {}),
  });
  return { raft, log };
}

/** Takes the node's Ready, persists it into `log`, acknowledges it, and returns it. */
export function drain(raft: RaftNode, log: MemoryLog): Ready | null {
  const rd = raft.ready();
  if (rd === null) return null;
  log.append(rd.entries);
  raft.advance();
  return rd;
}

/** All messages a node emits (both lists), after persisting its Ready. */
export function outbox(raft: RaftNode, log: MemoryLog): Message[] {
  const out: Message[] = [];
  for (;;) {
    const rd = drain(raft, log);
    if (rd === null) return out;
    out.push(...rd.messages, ...rd.messagesAfterPersist);
  }
}

/** The message variant(s) whose `type` may be T (some variants share an interface). */
type MessageOf<T extends Message['type'], M extends Message = Message> = M extends unknown ? (T extends M['type'] ? M : never) : never;

export function only<T extends Message['type']>(msgs: Message[], type: T): MessageOf<T>[] {
  return msgs.filter((m): m is MessageOf<T> => m.type === type);
}

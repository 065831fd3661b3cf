// The Raft configuration as of the last applied entry, kept in scm.db (`meta` table, key
// `raftConfiguration`) and written in the same atomic batch as the configuration entry it comes
// from. A checkpoint of scm.db therefore carries the configuration in force at its own index, and a
// follower that installs it adopts exactly that one: never the configuration a leader's message
// claims (Ratis keeps the configuration in its snapshot metadata for the same reason).
import type { RaftPeer } from './log-entry.js';
import { parseMetaRecord, positionField } from './meta-record.js';

export const RAFT_CONFIGURATION_KEY = 'raftConfiguration';

/** A configuration entry's content and position, as applied. */
export interface AppliedConfiguration {
  readonly term: number;
  readonly index: number;
  readonly voters: readonly RaftPeer[];
  readonly nonVoters: readonly RaftPeer[];
}

export function encodeAppliedConfiguration(c: AppliedConfiguration): string {
  return JSON.stringify({ term: c.term, index: c.index, voters: c.voters, nonVoters: c.nonVoters });
}

/** Strict: anything but what encodeAppliedConfiguration wrote is an error naming the record. */
export function parseAppliedConfiguration(text: string): AppliedConfiguration {
  const where = `meta/${RAFT_CONFIGURATION_KEY}`;
  const v = parseMetaRecord(text, where);
  const peers = (name: 'voters' | 'nonVoters'): RaftPeer[] => {
    const list = v[name];
    if (!Array.isArray(list)) throw new Error(`${where}: ${name} must be a list`);
    return list.map((p: unknown, k) => {
      const peer = p as Partial<Record<keyof RaftPeer, unknown>> | null;
      if (peer === null || typeof peer !== 'object' || typeof peer.id !== 'string' || peer.id === '' || typeof peer.address !== 'string') {
        throw new Error(`${where}: ${name}[${k}] must have a non-empty id and an address`);
      }
      const priority = peer.priority ?? 0;
      if (typeof priority !== 'number' || !Number.isSafeInteger(priority) || priority < 0) throw new Error(`${where}: ${name}[${k}] has an invalid priority`);
      return { id: peer.id, address: peer.address, priority };
    });
  };
  return { term: positionField(v, 'term', where), index: positionField(v, 'index', where), voters: peers('voters'), nonVoters: peers('nonVoters') };
}

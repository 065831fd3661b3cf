// This node's own removal from the Raft group, kept in scm.db (`meta` table, key
// `removedFromGroup`) so that a removed SCM, restarted on its old data, knows not to ask to be
// added again. The fact is "a committed configuration without this node followed one with it",
// and once both configurations are applied nothing else on disk still shows the first one: scm.db
// keeps only the latest configuration, raft-meta.conf the latest committed one, and the log may be
// purged. So the record is written in the same atomic batch as the configuration entry that
// removed the node, and deleted in the batch of a later configuration that holds it again (an
// administrator added it back).
//
// It is this node's local fact, not replicated state: every replica applies the same entries but
// only the removed node writes it. It is left out of the consistency hash, and a record naming
// another node (one a checkpoint could carry) is ignored, and deleted by the install that brought it.
import type { AppliedConfiguration } from './raft-configuration.js';
import { parseMetaRecord, positionField } from './meta-record.js';

export const REMOVED_FROM_GROUP_KEY = 'removedFromGroup';

/** The configuration entry that removed `nodeId` from the group. */
export interface RemovalRecord {
  readonly nodeId: string;
  readonly term: number;
  readonly index: number;
}

/** A node is in a configuration as a voter or as a non-voter (a joining member, a listener). */
export function configurationHolds(config: AppliedConfiguration, nodeId: string): boolean {
  return config.voters.some((p) => p.id === nodeId) || config.nonVoters.some((p) => p.id === nodeId);
}

/**
 * The removal record after `next` is applied (or installed from a checkpoint) on top of `prior`:
 * - `next` holds the node: none (it is a member, perhaps again);
 * - a record already: kept (still out since that earlier removal);
 * - the prior configuration held the node: `next` removed it;
 * - otherwise none: the node was never a member here (bootstrapped and not added yet).
 */
export function removalAfter(
  nodeId: string,
  prior: { readonly configuration: AppliedConfiguration | undefined; readonly removal: RemovalRecord | undefined },
  next: AppliedConfiguration,
): RemovalRecord | undefined {
  if (configurationHolds(next, nodeId)) return undefined;
  if (prior.removal !== undefined) return prior.removal;
  if (prior.configuration !== undefined && configurationHolds(prior.configuration, nodeId)) return { nodeId, term: next.term, index: next.index };
  return undefined;
}

export function encodeRemovalRecord(r: RemovalRecord): string {
  return JSON.stringify({ nodeId: r.nodeId, term: r.term, index: r.index });
}

/** Strict: anything but what encodeRemovalRecord wrote is an error naming the record. */
export function parseRemovalRecord(text: string): RemovalRecord {
  const where = `meta/${REMOVED_FROM_GROUP_KEY}`;
  const v = parseMetaRecord(text, where);
  if (typeof v['nodeId'] !== 'string' || v['nodeId'] === '') throw new Error(`${where}: nodeId must be a non-empty string`);
  return { nodeId: v['nodeId'], term: positionField(v, 'term', where), index: positionField(v, 'index', where) };
}

export function sameRemoval(a: RemovalRecord | undefined, b: RemovalRecord | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.nodeId === b.nodeId && a.term === b.term && a.index === b.index;
}

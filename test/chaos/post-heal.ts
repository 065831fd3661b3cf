// The checks run once every fault has healed and the workload has stopped, over what the run
// recorded and what each node holds. Pure functions of their inputs, so each can be shown to catch
// the violation it is for on a hand-made bad case (post-heal.test.ts).
import type { HistoryEntry, ListedContainer } from './history.js';

export interface Violation {
  readonly check: string;
  readonly message: string;
}

/** Each node's whole container table, read from that node alone after it caught up. */
export interface NodeTable {
  readonly node: string;
  readonly containers: readonly ListedContainer[];
}

const allocations = (history: readonly HistoryEntry[]): HistoryEntry[] => history.filter((e) => e.call.kind === 'allocate');
const ownerOfEntry = (e: HistoryEntry): string => (e.call.kind === 'allocate' ? e.call.owner : '');

/** Every acknowledged allocation is on every node, with the id and owner the client was told. */
export function checkAcknowledgedEverywhere(history: readonly HistoryEntry[], tables: readonly NodeTable[]): Violation[] {
  const out: Violation[] = [];
  for (const table of tables) {
    const byId = new Map(table.containers.map((c) => [c.id, c]));
    for (const e of allocations(history)) {
      if (e.outcome.type !== 'ok') continue;
      const id = e.outcome.id ?? -1;
      const held = byId.get(id);
      if (held === undefined) out.push({ check: 'acknowledged-everywhere', message: `${table.node} lacks container #${id} acknowledged to ${ownerOfEntry(e)}` });
      else if (held.owner !== ownerOfEntry(e)) out.push({ check: 'acknowledged-everywhere', message: `${table.node} holds #${id} for ${held.owner}, but it was acknowledged to ${ownerOfEntry(e)}` });
    }
  }
  return out;
}

/** No id was acknowledged twice, and each client's ids grow with its (sequential) calls. */
export function checkIdsUniqueAndIncreasing(history: readonly HistoryEntry[]): Violation[] {
  const out: Violation[] = [];
  const holder = new Map<number, string>();
  const lastOf = new Map<string, { id: number; owner: string }>();
  for (const e of [...allocations(history)].sort((a, b) => a.invoke - b.invoke)) {
    if (e.outcome.type !== 'ok' || e.outcome.id === undefined) continue;
    const id = e.outcome.id;
    const owner = ownerOfEntry(e);
    const other = holder.get(id);
    if (other !== undefined) out.push({ check: 'ids-unique-increasing', message: `container #${id} was acknowledged to both ${other} and ${owner}` });
    holder.set(id, owner);
    const last = lastOf.get(e.client);
    if (last !== undefined && id <= last.id) out.push({ check: 'ids-unique-increasing', message: `client ${e.client} got #${last.id} (${last.owner}) and then #${id} (${owner})` });
    lastOf.set(e.client, { id, owner });
  }
  return out;
}

/** Each call created at most one container (owners name calls, so a second one is a second apply). */
export function checkAppliedOnce(tables: readonly NodeTable[]): Violation[] {
  const out: Violation[] = [];
  for (const table of tables) {
    const seen = new Map<string, number>();
    for (const c of table.containers) {
      const first = seen.get(c.owner);
      if (first !== undefined) out.push({ check: 'applied-once', message: `${table.node}: call ${c.owner} created #${first} and #${c.id}` });
      else seen.set(c.owner, c.id);
    }
  }
  return out;
}

/** An allocation refused for good left no container behind. */
export function checkFailedHadNoEffect(history: readonly HistoryEntry[], tables: readonly NodeTable[]): Violation[] {
  const out: Violation[] = [];
  const failed = new Map(allocations(history).filter((e) => e.outcome.type === 'fail').map((e) => [ownerOfEntry(e), e]));
  for (const table of tables) {
    for (const c of table.containers) {
      const e = failed.get(c.owner);
      if (e !== undefined && e.outcome.type === 'fail') {
        out.push({ check: 'failed-no-effect', message: `${table.node}: #${c.id} was created by ${c.owner}, which failed with ${e.outcome.code}: ${e.outcome.message}` });
      }
    }
  }
  return out;
}

/** Every container any read returned was allocated by a call invoked before that read ended (no phantoms; STALE reads included). */
export function checkNoPhantomReads(history: readonly HistoryEntry[]): Violation[] {
  const invoked = new Map(allocations(history).map((e) => [ownerOfEntry(e), e.invoke]));
  const out: Violation[] = [];
  for (const e of history) {
    if (e.outcome.type !== 'ok' || e.outcome.containers === undefined || e.complete === null) continue;
    for (const c of e.outcome.containers) {
      const at = invoked.get(c.owner);
      if (at === undefined || at > e.complete) out.push({ check: 'no-phantom-reads', message: `${e.client} read #${c.id} of ${c.owner}, which no call had asked for yet` });
    }
  }
  return out;
}

export interface ReplicaState {
  readonly node: string;
  readonly appliedIndex: number;
  /** scm.db digest read with the node stopped. */
  readonly digest: string;
}

/** Every node applied the same log and holds the same scm.db and the same table. */
export function checkReplicasIdentical(replicas: readonly ReplicaState[], tables: readonly NodeTable[]): Violation[] {
  const out: Violation[] = [];
  const applied = new Set(replicas.map((r) => r.appliedIndex));
  if (applied.size > 1) out.push({ check: 'replicas-identical', message: `applied indexes differ: ${replicas.map((r) => `${r.node}=${r.appliedIndex}`).join(' ')}` });
  const digests = new Set(replicas.map((r) => r.digest));
  if (digests.size > 1) out.push({ check: 'replicas-identical', message: `scm.db digests differ: ${replicas.map((r) => `${r.node}=${r.digest.slice(0, 16)}`).join(' ')}` });
  const first = tables[0];
  for (const t of tables.slice(1)) {
    if (first !== undefined && JSON.stringify(t.containers) !== JSON.stringify(first.containers)) {
      out.push({ check: 'replicas-identical', message: `${t.node}'s container table (${t.containers.length}) differs from ${first.node}'s (${first.containers.length})` });
    }
  }
  return out;
}

export interface NodeExit {
  readonly node: string;
  readonly code: number | null;
  readonly signal: string | null;
  readonly at: number;
  readonly tail: string;
}

export function checkNoUnexpectedExit(exits: readonly NodeExit[]): Violation[] {
  return exits.map((x) => ({ check: 'no-unexpected-exit', message: `${x.node} exited by itself at ${(x.at / 1000).toFixed(1)} s (code ${x.code}, signal ${x.signal}):\n${x.tail}` }));
}

export interface HealRecord {
  readonly fault: string;
  /** ms from the heal action until every member was back and caught up; null if it never was. */
  readonly healMs: number | null;
}

export function checkHealBound(heals: readonly HealRecord[], boundMs: number): Violation[] {
  return heals
    .filter((h) => h.healMs === null || h.healMs > boundMs)
    .map((h) => ({ check: 'healed-within-bound', message: `${h.fault} did not heal within ${boundMs / 1000} s${h.healMs !== null ? ` (took ${(h.healMs / 1000).toFixed(1)} s)` : ''}` }));
}

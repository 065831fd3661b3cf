// Human-readable output: aligned tables and key/value blocks (`-o json` prints the data instead).
import type { ConsistencyReport, ContainerInfo, DatanodeDetails, Pipeline, ScmNodeRole } from '../api/scm-api.js';

export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => String(cell)))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return `${cells.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')).join('\n')}\n`;
}

export function keyValues(pairs: readonly (readonly [string, string | number])[]): string {
  const width = Math.max(...pairs.map(([key]) => key.length));
  return `${pairs.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${value}`).join('\n')}\n`;
}

export const replication = (item: { replicationType: string; replicationFactor: string }): string => `${item.replicationType}/${item.replicationFactor}`;

/**
 * A node that did not answer has no term or index to show: its row says "-" (and JSON says null)
 * rather than 0, which would read as a node that lost its log.
 */
function answered(role: ScmNodeRole): boolean {
  return role.role !== 'UNREACHABLE';
}

export function rolesTable(roles: readonly ScmNodeRole[]): string {
  return table(
    ['NODE ID', 'ADDRESS', 'CLIENT ADDRESS', 'ROLE', 'TERM', 'COMMIT', 'APPLIED'],
    roles.map((r) => [r.nodeId, r.address, r.clientAddress || '-', r.role, ...(answered(r) ? [r.term, r.commitIndex, r.appliedIndex] : ['-', '-', '-'])]),
  );
}

export function rolesJson(roles: readonly ScmNodeRole[]): unknown[] {
  return roles.map((r) => (answered(r) ? r : { ...r, term: null, commitIndex: null, appliedIndex: null }));
}

export function consistencyTable(report: ConsistencyReport): string {
  const verdict = report.consistent ? 'no member differs from the majority' : 'MISMATCH: some member differs from the majority';
  return `Consistency check at log index ${report.index}: ${verdict}.\n${table(
    ['NODE ID', 'STATE', 'HASH', 'DETAIL'],
    report.nodes.map((n) => [n.nodeId, n.state, n.hash || '-', n.detail || '-']),
  )}`;
}

export function containersTable(containers: readonly ContainerInfo[]): string {
  return table(
    ['ID', 'STATE', 'REPLICATION', 'OWNER', 'PIPELINE', 'USED BYTES', 'KEYS'],
    containers.map((c) => [c.containerId, c.state, replication(c), c.owner, c.pipelineId, c.usedBytes, c.numberOfKeys]),
  );
}

export function containerDetails(c: ContainerInfo): [string, string | number][] {
  return [
    ['Container id', c.containerId],
    ['State', c.state],
    ['State entered', new Date(c.stateEnterTime).toISOString()],
    ['Replication', replication(c)],
    ['Owner', c.owner],
    ['Pipeline id', c.pipelineId],
    ['Used bytes', c.usedBytes],
    ['Number of keys', c.numberOfKeys],
    ['Delete transaction id', c.deleteTransactionId],
    ['Sequence id', c.sequenceId],
  ];
}

export function pipelinesTable(pipelines: readonly Pipeline[]): string {
  return table(
    ['ID', 'STATE', 'REPLICATION', 'LEADER', 'MEMBERS', 'CREATED'],
    pipelines.map((p) => [p.id, p.state, replication(p), p.leaderId || '-', p.memberIds.join(','), new Date(p.creationTime).toISOString()]),
  );
}

export function datanodesTable(datanodes: readonly DatanodeDetails[]): string {
  return table(
    ['UUID', 'HOSTNAME', 'IP ADDRESS', 'PORTS'],
    datanodes.map((d) => [d.uuid, d.hostname, d.ipAddress, d.ports.map((p) => `${p.name}=${p.value}`).join(',') || '-']),
  );
}

/** Node ids in natural order: scm2 before scm10. */
export function sortedIds(ids: Iterable<string>): string[] {
  return [...ids].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

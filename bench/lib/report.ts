// The results of one `npm run bench` invocation (written as JSON) and their Markdown rendering.
// Pure: test/bench/ renders a fixture without running anything.
import type { LoadRow } from './members.js';
import type { StartupPhases } from './node-log.js';

export interface RunMeta {
  readonly date: string;
  readonly gitCommit: string;
  /** Uncommitted changes outside bench/results/ when the run started. */
  readonly gitDirty: boolean;
  readonly node: string;
  readonly platform: string;
  readonly kernel: string;
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  /** 1, 5 and 15 minute load averages when the run started and ended. */
  readonly loadAverageStart: readonly number[];
  readonly loadAverageEnd: readonly number[];
  /** Where the nodes' data lived (os.tmpdir()) and the filesystem under it. */
  readonly dataDir: string;
  readonly filesystem: string;
  readonly etcdVersion: string | undefined;
  /** Our cluster ran with mutual TLS on every port. */
  readonly tls: boolean;
  readonly argv: readonly string[];
}

/** CPU and RSS of each member over a few seconds without load. */
export interface IdleSample {
  readonly system: 'scm' | 'etcd';
  readonly seconds: number;
  readonly members: ReadonlyArray<{ readonly name: string; readonly role: string; readonly cpuCores: number | null; readonly rssMiB: number | null }>;
}

export interface LoadPart {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly channels: number;
  /** Bytes of one encoded AllocateContainer command (the Raft entry's logData). */
  readonly scmCommandBytes: number;
  /** Bytes of the value of each etcd Put. */
  readonly etcdValueBytes: number;
  /** Absent in results written before it was measured. */
  readonly idle?: readonly IdleSample[];
  readonly rows: readonly LoadRow[];
}

export interface FailoverRound {
  readonly round: number;
  readonly killed: string;
  readonly newLeader: string | undefined;
  /** Kill → a surviving node reports itself leader (polled every 20 ms). */
  readonly electionMs: number | undefined;
  /** Longest time without any acknowledged allocation, from the last one before the kill. */
  readonly longestGapMs: number;
  /** Kill → first allocation acknowledged after it. */
  readonly firstAckAfterKillMs: number | undefined;
  /** The killed node, spawned again: until /readyz answers 200 (caught up). */
  readonly restartToReadyMs: number | undefined;
  readonly restartPhases: StartupPhases;
  readonly acks: number;
}

export interface FailoverPart {
  readonly callers: number;
  readonly rounds: readonly FailoverRound[];
  /** Longest gap between acknowledgements under the same load before the first kill. */
  readonly steadyLongestGapMs: number;
  readonly ops: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly opsPerSec: number;
}

export interface RestartNode {
  readonly name: string;
  readonly role: string;
  readonly phases: StartupPhases;
  /** Spawn → /readyz 200. */
  readonly toReadyMs: number | undefined;
  readonly rssMiB: number | null;
  readonly anonMiB: number | null;
  readonly peakRssMiB: number | null;
}

export interface RestartPart {
  readonly entries: number;
  readonly generation: {
    readonly method: string;
    readonly seconds: number;
    readonly commandBytes: number;
    readonly lastIndex: number;
  };
  readonly logBytesPerNode: number;
  readonly dbBytesPerNode: number;
  /** All three nodes spawned together on the generated data. */
  readonly all: {
    readonly nodes: readonly RestartNode[];
    /** Spawn → a node reports itself leader. */
    readonly leaderMs: number | undefined;
    /** Spawn → the first allocation (issued at spawn, retried by the client) is acknowledged. */
    readonly firstAllocationMs: number | undefined;
    readonly containers: number | undefined;
  };
  /** One follower killed (-9) and spawned again while the other two run. */
  readonly follower: RestartNode;
  /** A short load row with the large state in place. */
  readonly loadRow: LoadRow | undefined;
}

export interface SnapshotPart {
  readonly records: number;
  /** The JSON line bench/snapshot.bench.ts prints. */
  readonly result: Record<string, unknown>;
  /** Its human-readable lines. */
  readonly lines: readonly string[];
}

export interface BenchResults {
  readonly meta: RunMeta;
  readonly load?: LoadPart;
  readonly failover?: FailoverPart;
  readonly restart?: RestartPart;
  readonly snapshot?: SnapshotPart;
  /** Parts that failed, with the error's message. */
  readonly failures?: Readonly<Record<string, string>>;
}

const dash = '–';

function num(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return dash;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return dash;
  return v >= 100 ? num(v, 0) : v >= 10 ? num(v, 1) : num(v, 2);
}

function seconds(vMs: number | null | undefined): string {
  if (vMs === null || vMs === undefined || !Number.isFinite(vMs)) return dash;
  return num(vMs / 1000, 2);
}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function roleTag(role: string): string {
  return role === 'leader' ? 'L' : role === 'follower' ? 'F' : role === 'down' ? 'down' : role;
}

/** Per-member values as "L 1.2 / F 0.8 / F 0.7", leader first. */
function perMember(row: LoadRow, pick: (m: LoadRow['members'][number]) => number | null, digits: number): string {
  const sorted = [...row.members].sort((a, b) => (a.role === 'leader' ? -1 : b.role === 'leader' ? 1 : a.name.localeCompare(b.name)));
  return sorted.map((m) => `${roleTag(m.role)} ${num(pick(m), digits)}`).join(' / ');
}

function followersMean(row: LoadRow): number | null {
  const f = row.members.filter((m) => m.role === 'follower' && m.entriesPerFsync !== null).map((m) => m.entriesPerFsync as number);
  return f.length === 0 ? null : f.reduce((s, v) => s + v, 0) / f.length;
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${num(a / b, 2)}×` : dash;
}

export function renderLoadComparison(rows: readonly LoadRow[]): string {
  const callers = [...new Set(rows.map((r) => r.callers))];
  const body = callers.map((c) => {
    const ours = rows.find((r) => r.system === 'scm' && r.callers === c);
    const etcd = rows.find((r) => r.system === 'etcd' && r.callers === c);
    return [
      String(c),
      num(ours?.opsPerSec),
      num(etcd?.opsPerSec),
      ours !== undefined && etcd !== undefined ? ratio(ours.opsPerSec, etcd.opsPerSec) : dash,
      `${ms(ours?.p50Ms)} / ${ms(etcd?.p50Ms)}`,
      `${ms(ours?.p99Ms)} / ${ms(etcd?.p99Ms)}`,
      `${ms(ours?.maxMs)} / ${ms(etcd?.maxMs)}`,
      `${num(ours?.leaderEntriesPerFsync, 1)} / ${num(etcd?.leaderEntriesPerFsync, 1)}`,
      `${num(ours?.clusterCpuSecondsPer1kOps, 2)} / ${num(etcd?.clusterCpuSecondsPer1kOps, 2)}`,
    ];
  });
  return table(['callers', 'ours ops/s', 'etcd ops/s', 'ours/etcd', 'p50 ms ours / etcd', 'p99 ms ours / etcd', 'max ms ours / etcd', 'leader entries/fsync ours / etcd', 'cluster CPU s per 1k ops ours / etcd'], body);
}

export function renderLoadRows(rows: readonly LoadRow[]): string {
  return table(
    ['system', 'callers', 'ops/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'entries/fsync (L / F avg)', 'fsyncs/s (L)', 'CPU s per 1k ops per node', 'cluster CPU s/1k', 'loadgen CPU s/1k', 'RSS MiB per node', 'machine busy cores (other)', 'load avg 1m'],
    rows.map((r) => [
      r.system === 'scm' ? 'ours' : 'etcd',
      String(r.callers),
      num(r.opsPerSec),
      ms(r.p50Ms),
      ms(r.p90Ms),
      ms(r.p99Ms),
      ms(r.maxMs),
      String(r.errors),
      `${num(r.leaderEntriesPerFsync, 1)} / ${num(followersMean(r), 1)}`,
      num(r.members.find((m) => m.role === 'leader')?.fsyncsPerSec),
      perMember(r, (m) => m.cpuSecondsPer1kOps, 2),
      num(r.clusterCpuSecondsPer1kOps, 2),
      num(r.loadgenCpuSecondsPer1kOps, 2),
      perMember(r, (m) => m.rssMiB, 0),
      `${num(r.machineBusyCores, 2)} (${num(r.otherBusyCores, 2)})`,
      num(r.loadAverage1m, 2),
    ]),
  );
}

export function renderIdle(idle: readonly IdleSample[]): string {
  return table(
    ['system', 'seconds', 'CPU cores per node', 'RSS MiB per node'],
    idle.map((i) => {
      const sorted = [...i.members].sort((a, b) => (a.role === 'leader' ? -1 : b.role === 'leader' ? 1 : a.name.localeCompare(b.name)));
      return [
        i.system === 'scm' ? 'ours' : 'etcd',
        num(i.seconds, 1),
        sorted.map((m) => `${roleTag(m.role)} ${num(m.cpuCores, 3)}`).join(' / '),
        sorted.map((m) => `${roleTag(m.role)} ${num(m.rssMiB)}`).join(' / '),
      ];
    }),
  );
}

function renderFailover(f: FailoverPart): string {
  const gaps = f.rounds.map((r) => r.longestGapMs).sort((a, b) => a - b);
  const median = gaps.length === 0 ? undefined : gaps[Math.floor((gaps.length - 1) / 2)];
  const rows = f.rounds.map((r) => [
    String(r.round),
    r.killed,
    r.newLeader ?? dash,
    ms(r.electionMs),
    ms(r.firstAckAfterKillMs),
    ms(r.longestGapMs),
    ms(r.restartPhases.toStorageOpenMs),
    ms(r.restartPhases.toStartedMs),
    ms(r.restartToReadyMs),
  ]);
  return [
    `${f.callers} callers; ${num(f.opsPerSec)} allocations/s over the whole part (${num(f.ops)} acknowledged, ${f.errors} failed); longest gap before the first kill: ${ms(f.steadyLongestGapMs)} ms; longest gap per kill: median ${ms(median)} ms, max ${ms(gaps[gaps.length - 1])} ms.`,
    '',
    'The longest gap runs from the last acknowledgement before the kill to the first one the new leader gives. "kill → first ack" can be a few ms: answers the old leader had written before it died still arrive. The killed node is then spawned again: the last three columns are its start-up (small state), from spawn.',
    '',
    table(['round', 'killed (leader)', 'new leader', 'kill → new leader ms', 'kill → first ack ms', 'longest gap ms', 'restart → log recovered ms', 'restart → started ms', 'restart → ready ms'], rows),
    ...(f.errorSamples.length > 0 ? ['', `Errors seen: ${f.errorSamples.map((e) => `\`${e}\``).join('; ')}`] : []),
  ].join('\n');
}

function restartNodeRow(n: RestartNode): string[] {
  return [
    n.name,
    n.role,
    seconds(n.phases.toStorageOpenMs),
    seconds(n.phases.storageToStartedMs),
    seconds(n.phases.toStartedMs),
    seconds(n.toReadyMs),
    num(n.rssMiB),
    num(n.anonMiB),
    num(n.peakRssMiB),
  ];
}

function renderRestart(r: RestartPart): string {
  const mib = (b: number): string => num(b / 1048576);
  return [
    `${num(r.entries)} AllocateContainer entries (${r.generation.commandBytes}-byte commands) generated ${r.generation.method} in ${num(r.generation.seconds, 1)} s; per node: Raft log ${mib(r.logBytesPerNode)} MiB, scm.db ${mib(r.dbBytesPerNode)} MiB; ${num(r.all.containers)} containers after the restart.`,
    '',
    `All three nodes started together: a leader after ${seconds(r.all.leaderMs)} s, the first allocation acknowledged after ${seconds(r.all.firstAllocationMs)} s.`,
    '',
    table(
      ['node', 'case', 'spawn → log recovered s', '→ scm.db loaded, started s', 'spawn → started s', 'spawn → ready s', 'RSS MiB', 'anon MiB', 'peak RSS MiB'],
      [...r.all.nodes.map((n) => restartNodeRow({ ...n, role: `all together (${n.role})` })), restartNodeRow({ ...r.follower, role: 'follower alone, after kill -9' })],
    ),
    ...(r.loadRow !== undefined ? ['', `Load with ${num(r.entries)} containers in place:`, '', renderLoadRows([r.loadRow])] : []),
  ].join('\n');
}

function renderSnapshot(s: SnapshotPart): string {
  return ['```', ...s.lines, '```'].join('\n');
}

export function renderMarkdown(results: BenchResults): string {
  const m = results.meta;
  const out: string[] = [
    `# scm-ha benchmark, ${m.date}`,
    '',
    `- commit \`${m.gitCommit}\`${m.gitDirty ? ' (with uncommitted changes)' : ''}; Node ${m.node}; ${m.platform} ${m.kernel}`,
    `- ${m.cpus} × ${m.cpuModel}, ${num(m.memoryGiB, 1)} GiB RAM; data in ${m.dataDir} (${m.filesystem})`,
    `- load average (1/5/15 min) at start ${m.loadAverageStart.map((v) => num(v, 2)).join(' / ')}, at end ${m.loadAverageEnd.map((v) => num(v, 2)).join(' / ')}: the machine is shared, so "machine busy cores (other)" says how much CPU other processes took during each row`,
    ...(m.etcdVersion !== undefined ? [`- ${m.etcdVersion}`] : []),
    `- our cluster: ${m.tls ? 'mutual TLS on the client, Ratis and InterSCM ports (the load generator presents the administrator\'s certificate)' : 'plaintext'}`,
    `- \`${m.argv.length === 0 ? 'npm run bench' : ['npm run bench --', ...m.argv].join(' ')}\``,
  ];
  for (const [part, message] of Object.entries(results.failures ?? {})) out.push('', `**${part} failed:** ${message.split('\n')[0] ?? ''}`);
  if (results.load !== undefined) {
    const l = results.load;
    const hasEtcd = l.rows.some((r) => r.system === 'etcd');
    out.push('', '## Load: AllocateContainer, closed loop', '');
    out.push(
      `A separate load generator process, ${l.channels} gRPC channel(s), ${l.warmupSeconds} s warm-up then ${l.seconds} s measured per row. Ours: AllocateContainer through the TypeScript client to the leader (a ${l.scmCommandBytes}-byte command per Raft entry). ` +
        (hasEtcd ? `etcd: KV.Put of a new key with a ${l.etcdValueBytes}-byte value to the leader, rows alternating with ours. ` : '') +
        'Entries per fsync: entries made durable per log fsync (ours: scm_raft_log_entries_per_fsync; etcd: proposals committed per WAL fsync). CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status at the end of the row.',
    );
    if (hasEtcd) out.push('', renderLoadComparison(l.rows));
    out.push('', renderLoadRows(l.rows));
    if (l.idle !== undefined && l.idle.length > 0) out.push('', 'Without load (before the rows):', '', renderIdle(l.idle));
  }
  if (results.failover !== undefined) out.push('', '## Failover: kill -9 the leader under load', '', renderFailover(results.failover));
  if (results.restart !== undefined) out.push('', '## Restart with a large log and scm.db', '', renderRestart(results.restart));
  if (results.snapshot !== undefined) out.push('', `## Snapshot catch-up (bench/snapshot.bench.ts, ${num(results.snapshot.records)} records)`, '', renderSnapshot(results.snapshot));
  return out.join('\n') + '\n';
}
